"""report.html (``nnforge report OUTDIR --html``) and explore.html (``explore_page``):
self-contained pages whose charts render in headless Chromium without a script error,
names from models and files escaped, and the file written into an output folder only
where nnforge may write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from browser import body_data, dump_dom, needs_chromium, screenshot
from conftest import ROOT
from nnforge.cli import main
from nnforge.htmlreport import explore_page, report_page
from nnforge.htmlreport.designpage import engine_timeline
from nnforge.htmlreport.svg import Point, Scale, extent, front_2d
from nnforge.sim.files import (MARKER, OutputFolderError, check_replaceable, modified_files, read_manifest,
                               write_in_output)

CNN, MLP = ROOT / "examples" / "digits_cnn", ROOT / "examples" / "digits_mlp"
SCRIPT_BREAK = "</script><script>alert(1)</script>"
ATTR_BREAK = '"><img src=x onerror=alert(1)>'
CHART = re.compile(r'<svg class="chart" data-chart="([^"]*)"')


def compiled(tmp_path_factory, example: Path, name: str, *extra: str) -> Path:
    out = tmp_path_factory.mktemp(name) / "out"
    assert main(["compile", str(example / "model.onnx"), "--calibration", str(example / "calibration.npz"),
                 "--targets", "verilog", "-o", str(out), "-q", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def cnn_out(tmp_path_factory) -> Path:
    return compiled(tmp_path_factory, CNN, "cnn")


@pytest.fixture(scope="module")
def mlp_out(tmp_path_factory) -> Path:
    return compiled(tmp_path_factory, MLP, "mlp")


def report_html(out: Path, capsys, *extra: str) -> str:
    assert main(["report", str(out), "--html", *extra]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed) == out / "report.html"
    return (out / "report.html").read_text()


def expected_charts(info: dict) -> list[str]:
    """The charts report.html should hold for this report.json, derived from its layers."""
    layers = info["layers"]
    names = ["sqnr", "acc-width"]
    names += ["weights"] * sum("weights" in r for r in layers)  # one per layer with weights
    names += ["values"] * (len(layers) + 1)  # the model input and every node's output
    names += ["cycles", "resources", "timeline"] if info.get("verilog") else []
    names += ["energy"] if info.get("energy") else []
    return sorted(names)


def kinds(text: str) -> list[str]:
    return sorted(re.sub(r"-\d+$", "", n) for n in CHART.findall(text))


def rendered(page: Path) -> dict[str, str]:
    """The page's body data after its scripts ran in Chromium; no error may have occurred."""
    data = body_data(dump_dom(page))
    assert data.get("errors") == "0", data
    return data


def assert_self_contained(text: str) -> None:
    refs = re.findall(r'\b(?:src|href|xlink:href|action|poster|data)\s*=\s*["\']?([^"\'\s>]*)', text, flags=re.I)
    bad = [r for r in refs if re.match(r"(?:[a-z][a-z0-9+.-]*:|//)", r, flags=re.I)]
    assert not bad, bad
    assert not re.search(r"url\(|@import|<link\b|<img\b|<iframe\b|<object\b|<embed\b", text, flags=re.I)
    assert all(ord(c) < 128 for c in text)


# ---- report.html --------------------------------------------------------------------------------

@needs_chromium
def test_cnn_report_charts_render(cnn_out, capsys):
    text = report_html(cnn_out, capsys)
    info = json.loads((cnn_out / "report.json").read_text())
    assert kinds(text) == expected_charts(info)
    assert "weights" in kinds(text) and "timeline" in kinds(text)
    assert "64 samples of the calibration data" in text
    assert_self_contained(text)
    data = rendered(cnn_out / "report.html")
    assert data["charts"] == data["declared"] == str(len(CHART.findall(text)))


@needs_chromium
def test_mlp_report_on_data(mlp_out, capsys):
    text = report_html(mlp_out, capsys, "--data", str(MLP / "test.npz"), "--limit", "100")
    info = json.loads((mlp_out / "report.json").read_text())
    assert kinds(text) == expected_charts(info)
    assert "100 samples of the data file" in text and "calibration data" not in text
    data = rendered(mlp_out / "report.html")
    assert data["charts"] == str(len(CHART.findall(text)))


@pytest.mark.parametrize("fixture", ["cnn_out", "mlp_out"])
def test_timeline_ends_at_the_reported_latency(fixture, request):
    """The busy intervals are derived from the engines' latencies along the chain (the
    engine graph's streams, or the Dense chain's order): the last engine ends at the
    design's latency as the Verilog report states it."""
    v = json.loads((request.getfixturevalue(fixture) / "report.json").read_text())["verilog"]
    rows = engine_timeline(v, v["layers"])
    assert len(rows) == len(v["layers"])
    assert max(end for _, _, end, _ in rows) == v["totals"]["latency_cycles"]
    assert all(0 <= start <= end for _, start, end, _ in rows)
    assert [end for _, _, end, _ in rows] == sorted(end for _, _, end, _ in rows)  # a chain: in order


def test_profile_in_report_json(cnn_out):
    info = json.loads((cnn_out / "report.json").read_text())
    prof = info["profile"]
    assert prof["samples"] == info["precision"]["samples"] == 64
    tensors = prof["tensors"]
    assert [t["layer"] for t in tensors if t["kind"] == "weights"] == [r["name"] for r in info["layers"] if "weights" in r]
    for t in tensors:
        assert len(t["int"]) == prof["bins"] == len(t["float"])
        assert sum(t["int"]) == sum(t["float"]) == t["values"]  # every value counted once
        assert t["interval"][0] <= t["interval"][1] and t["edges"][0] < t["edges"][1]
    fmt = {r["name"]: r["weights"] for r in info["layers"] if "weights" in r}
    assert all(t["format"] == fmt[t["layer"]] for t in tensors if t["kind"] == "weights")


def test_saturation_counts():
    """A 4-bit design calibrated at the 99th percentile saturates activations; the float
    values beyond each interval are counted, and the golden model's values pile up in the
    bin of the interval's end."""
    import nnforge

    x = np.load(CNN / "calibration.npz")["x"]
    design = nnforge.compile(CNN / "model.onnx", calibration=x, bits=4, calibration_method="percentile:99")
    prof = design.profile(x[:128])
    assert prof["samples"] == 128
    sat = [t for t in prof["tensors"] if t["above"]]
    assert sat, "percentile calibration at 4 bits saturates some tensor"
    for t in sat:
        a, b = t["edges"]
        top = int((t["interval"][1] - a) / (b - a) * len(t["int"]))
        assert sum(t["int"][max(top - 1, 0):top + 1]) >= t["above"]
    full = nnforge.compile(CNN / "model.onnx", calibration=x, bits=8)
    assert not any(t["above"] or t["below"] for t in full.profile(x)["tensors"] if t["kind"] == "weights")


@needs_chromium
def test_missing_sections_say_so(cnn_out, tmp_path):
    info = json.loads((cnn_out / "report.json").read_text())
    for key in ("profile", "verilog", "energy"):
        info.pop(key, None)
    info["model"] = f"m{SCRIPT_BREAK}"  # also in the page's JSON: a script the page parses
    text = report_page(info)
    assert SCRIPT_BREAK not in text and "m\\u003c/script\\u003e" in text
    assert "No value profile" in text and "no Verilog design" in text and "no energy estimate in this report" in text
    assert kinds(text) == ["acc-width", "sqnr"]  # the charts that exist still render
    (tmp_path / "p.html").write_text(text)
    assert rendered(tmp_path / "p.html")["charts"] == "2"


def test_malformed_report_fields_leave_charts_out(cnn_out):
    info = json.loads((cnn_out / "report.json").read_text())
    info["precision"] = {"layers": [1, "x", {"name": ["a"], "sqnr_db": "high"}], "samples": -3}
    info["layers"] = "none"
    info["profile"] = {"tensors": [{"edges": [1, 1], "int": [1]}, {"edges": [0, 1], "int": [1, -2]}, 7]}
    info["verilog"] = {"layers": [{"name": 3, "latency_cycles": "x", "estimate": []}, None], "totals": []}
    info["energy"] = {"layers": {"a": 1}, "total_pj": float("nan"), "model": 5}
    text = report_page(info)
    assert "No value profile" in text and "sqnr" in kinds(text)
    with pytest.raises(ValueError, match="not hold a JSON object"):
        report_page([info])


HOSTILE_VALUES = (10 ** 400, -(10 ** 400), 5e-324, -5e-324, 1e308, -1, 2 ** 63, float("inf"), "9", None, [], {})


def _leaves(doc, path=()):
    """Every leaf of a JSON document (of a list of numbers, its first two items only)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            if i < 2 or not isinstance(v, (int, float)):
                yield from _leaves(v, path + (i,))
    else:
        yield path


def test_any_hostile_number_in_the_report_gives_a_page(cnn_out):
    """Every leaf of a real report.json replaced by huge, tiny, negative or wrongly typed
    values, one at a time: the page is still made (a bad figure leaves its chart out)."""
    info = json.loads((cnn_out / "report.json").read_text())
    paths = list(_leaves(info))
    assert len(paths) > 300
    for i, path in enumerate(paths):
        doc = json.loads(json.dumps(info))
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = HOSTILE_VALUES[i % len(HOSTILE_VALUES)]
        try:
            report_page(doc)
        except Exception as e:  # noqa: BLE001 - the failing path is the message
            raise AssertionError(f"report_page failed with {path} = {node[path[-1]]!r}: {e!r}") from e


def test_report_cli_errors_are_one_line(cnn_out, tmp_path, capsys):
    assert main(["report", str(tmp_path), "--html"]) == 2  # not an output folder
    assert "not an nnforge output folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other (argparse's usage error)
        main(["report", str(cnn_out), "--html", "--json"])
    assert "not allowed with" in capsys.readouterr().err


def hostile_model() -> onnx.ModelProto:
    """A Dense chain whose graph, node and tensor names try to close a script or an attribute."""
    rng = np.random.default_rng(0)
    w0, b0, w1, b1 = (f"w0{SCRIPT_BREAK}", f"b0{ATTR_BREAK}", f"w1{ATTR_BREAK}", f"b1{SCRIPT_BREAK}")
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in ((w0, (5, 6)), (b0, (5,)), (w1, (3, 5)), (b1, (3,)))]
    nodes = [helper.make_node("Gemm", ["x", w0, b0], [f"h{ATTR_BREAK}"], name=f"fc0{SCRIPT_BREAK}", transB=1),
             helper.make_node("Relu", [f"h{ATTR_BREAK}"], [f"r{SCRIPT_BREAK}"], name=f"relu{ATTR_BREAK}"),
             helper.make_node("Gemm", [f"r{SCRIPT_BREAK}", w1, b1], ["y"], name=f"fc1{ATTR_BREAK}", transB=1)]
    graph = helper.make_graph(nodes, f"net{SCRIPT_BREAK}", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                         ["N", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@needs_chromium
def test_hostile_names_are_escaped(tmp_path, capsys):
    import nnforge

    x = np.random.default_rng(1).standard_normal((64, 6)).astype(np.float32)
    design = nnforge.compile(hostile_model(), calibration=x)
    out = design.write(tmp_path / "out", targets=["verilog"])
    text = report_html(Path(out), capsys)
    assert "alert(1)" in text  # the names are shown ...
    for raw in (SCRIPT_BREAK, ATTR_BREAK, "<img", "<script>alert"):  # ... never as markup
        assert raw not in text
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert_self_contained(text)
    dom = dump_dom(Path(out) / "report.html")
    data = body_data(dom)
    assert data["errors"] == "0" and data["charts"] == str(len(CHART.findall(text)))
    assert len(re.findall(r"<script\b", dom)) == len(re.findall(r"<script\b", text)) == 3
    assert "<img" not in dom


# ---- writing into the output folder -------------------------------------------------------------

@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "out"
    assert main(["compile", str(MLP / "model.onnx"), "--calibration", str(MLP / "calibration.npz"), "--targets",
                 "c", "-o", str(out), "-q"]) == 0
    return out


def test_write_in_output_lists_the_file(folder):
    path = write_in_output(folder, "report.html", "<p>one</p>")
    assert path == folder / "report.html" and path.read_text() == "<p>one</p>"
    assert "report.html" in read_manifest(folder) and modified_files(folder) == []
    write_in_output(folder, "report.html", "<p>two \u00e9</p>")  # nnforge's own file is replaced
    assert path.read_text(encoding="utf-8") == "<p>two \u00e9</p>" and modified_files(folder) == []
    assert not json.loads((folder / MARKER).read_text()).get("pending")
    check_replaceable(folder)  # a later compile may replace the folder
    assert main(["compile", str(MLP / "model.onnx"), "--calibration", str(MLP / "calibration.npz"), "--targets",
                 "c", "-o", str(folder), "-q"]) == 0
    assert not (folder / "report.html").exists()


def test_refuses_a_users_own_or_edited_file(folder):
    (folder / "report.html").write_text("mine")
    with pytest.raises(OutputFolderError, match="report.html, which nnforge did not write"):
        write_in_output(folder, "report.html", "x")
    assert (folder / "report.html").read_text() == "mine" and "report.html" not in read_manifest(folder)
    (folder / "report.html").unlink()
    write_in_output(folder, "report.html", "ours")
    (folder / "report.html").write_text("edited")
    with pytest.raises(OutputFolderError, match="changed since nnforge wrote it"):
        write_in_output(folder, "report.html", "x")
    assert (folder / "report.html").read_text() == "edited"


@pytest.mark.parametrize("target", ["outside", "report.json", "missing"])
def test_refuses_a_symlink(folder, tmp_path, target):
    victim = {"outside": tmp_path / "victim.txt", "report.json": folder / "report.json",
              "missing": tmp_path / "nothing"}[target]
    if target == "outside":
        victim.write_text("keep")
    before = victim.read_bytes() if victim.exists() else None
    (folder / "report.html").symlink_to(victim)
    with pytest.raises(OutputFolderError, match="not a file nnforge wrote"):
        write_in_output(folder, "report.html", "x")
    assert (folder / "report.html").is_symlink() and not (tmp_path / "nothing").exists()
    assert (victim.read_bytes() if victim.exists() else None) == before


def test_cli_refuses_and_keeps_the_users_file(folder, capsys):
    (folder / "report.html").write_text("mine")
    assert main(["report", str(folder), "--html"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nnforge did not write" in err
    assert (folder / "report.html").read_text() == "mine"


def test_write_in_output_needs_a_marker_and_a_plain_name(folder, tmp_path):
    with pytest.raises(OutputFolderError, match="not an nnforge output folder"):
        write_in_output(tmp_path / "elsewhere", "report.html", "x")
    for rel in ("../report.html", "/tmp/x.html", MARKER, "a//b"):
        with pytest.raises(ValueError):
            write_in_output(folder, rel, "x")


# ---- explore.html -------------------------------------------------------------------------------

def record(i: int, **figures) -> dict:
    base = {"key": f"{i:012x}", "options": {"weight_bits": 8 - i % 4, "act_bits": 8, "per_channel": bool(i % 2),
                                            "calibration_method": "minmax", "parallelism": "balanced", "fit": None,
                                            "target_fps": None},
            "status": "ok", "error": None, "accuracy": 0.9 - 0.02 * i, "cycles": 100 + 40 * i, "ii_cycles": 64,
            "clock_mhz": 100.0, "latency_us": (100 + 40 * i) / 100, "multipliers": 40 - 3 * i, "dsp": 40 - 3 * i,
            "luts": 2000 + 100 * i, "ffs": 1500, "bram": 1.0, "fmax_mhz": None, "energy_pj": None, "part": None,
            "pareto": i < 2}
    return {**base, **figures}


META = {"model": "digits", "configurations": 0, "failed": 0, "validation_samples": 360,
        "objectives": "accuracy (max), latency_us (min), luts (min), dsp (min)"}


def points_of(text: str, chart: str) -> list[str]:
    svg = re.search(r'<svg class="chart" data-chart="%s".*?</svg>' % chart, text, flags=re.S).group(0)
    return re.findall(r'<a href="#([^"]+)" class="pt"', svg)


@needs_chromium
def test_explore_page(tmp_path):
    recs = [record(i) for i in range(6)]
    recs += [record(6, status="failed", error=f"Yosys failed {SCRIPT_BREAK}", accuracy=None, cycles=None,
                    latency_us=None, dsp=None, luts=None, pareto=False),
             record(7, luts=None, energy_pj=None), record(8, accuracy=None)]
    text = explore_page(recs, {**META, "configurations": len(recs), "failed": 1})
    assert kinds(text) == ["accuracy-dsp", "accuracy-latency", "accuracy-luts"]  # no energy figures
    rows = set(re.findall(r'<tr id="([^"]+)"', text))
    for chart, drawn in (("accuracy-latency", 7), ("accuracy-luts", 6), ("accuracy-dsp", 7)):
        pts = points_of(text, chart)
        assert len(pts) == drawn and set(pts) <= rows  # every point links to its row
    assert "cfg-000000000006" in rows and "error: Yosys failed &lt;/script&gt;" in text
    assert text.count('class="marked"') == 2 * 3  # the Pareto points, in each chart
    assert_self_contained(text)
    (tmp_path / "explore.html").write_text(text)
    assert rendered(tmp_path / "explore.html")["charts"] == "3"
    recs = [record(i, energy_pj=1000.0 * (i + 1)) for i in range(3)]
    assert "accuracy-energy" in kinds(explore_page(recs, META))


@needs_chromium
@pytest.mark.parametrize("case", ["none ok", "one", "equal", "nones", "garbage"])
def test_explore_page_edge_cases(case, tmp_path):
    recs = {"none ok": [record(i, status="failed", error="no", accuracy=None) for i in range(2)],
            "one": [record(0)],
            "equal": [record(0, key=f"{i:012x}") for i in range(4)],
            "nones": [record(i, **{k: None for k in ("accuracy", "latency_us", "luts", "dsp", "energy_pj")})
                      for i in range(3)],
            "garbage": [record(0, key=f"k{SCRIPT_BREAK}", options="x", accuracy=True, luts=float("inf")),
                        record(1, key=f"k{SCRIPT_BREAK}", latency_us=-1e308, dsp=10**400), "junk", 5,
                        record(2, error=ATTR_BREAK, status="failed")]}[case]
    text = explore_page(recs, {**META, "model": f"m{SCRIPT_BREAK}"})
    assert SCRIPT_BREAK not in text and ATTR_BREAK not in text
    # garbage: only record 1's LUTs are a figure beside a valid accuracy (True is no accuracy; inf, -1e308 and
    # 10**400 are no figures)
    expected = {"none ok": 0, "one": 3, "equal": 3, "nones": 0, "garbage": 1}[case]
    assert len(CHART.findall(text)) == expected
    if case == "none ok":
        assert "nothing to plot" in text
    (tmp_path / "e.html").write_text(text)
    assert rendered(tmp_path / "e.html")["charts"] == str(expected)


def test_explore_page_refuses_what_is_not_a_sweep():
    with pytest.raises(ValueError, match="records must be a list"):
        explore_page({"a": 1}, META)
    with pytest.raises(ValueError, match="meta must be an object"):
        explore_page([], None)


# ---- the chart primitives ---------------------------------------------------------------------

def test_front_and_degenerate_scales():
    pts = [Point(x, y, "#a", "", "a") for x, y in ((3, 0.5), (1, 0.2), (2, 0.6), (2, 0.1), (5, 0.6), (4, 0.9))]
    assert front_2d(pts) == [(1, 0.2), (2, 0.6), (4, 0.9)]
    assert extent([7.0, 7.0]) == (6.3, 7.7) and extent([0.0]) == (-1.0, 1.0) and extent([None]) == (0.0, 1.0)
    s = Scale.nice(*extent([5.0]), 0, 100)
    assert s.lo < 5 < s.hi and len(s.ticks()) >= 2
    log = Scale(0.0, 1e4, 0, 100, "log1p")
    assert log.ticks()[0] == 0 and 1e4 in log.ticks() and log(0) == 0 and log(1e4) == 100


@needs_chromium
def test_screenshot_of_the_report(cnn_out, capsys, tmp_path):
    report_html(cnn_out, capsys)
    png = screenshot(cnn_out / "report.html", tmp_path / "report.png", 1200, 3000)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # charts drawn, not a blank page
