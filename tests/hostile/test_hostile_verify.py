"""Hostile output folders handed to ``nnforge verify`` / ``report``: nothing that came with
the folder is executed or compiled beyond the sources its manifest lists, builds go to the
private cache (keyed by content), and a malformed design file is one line and exit 2."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from .harness import nnforge, tree, patch_zip

DATA = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp" / "test.npz"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("build_cache")
    d.chmod(0o700)
    return d


@pytest.fixture
def env(shared_cache) -> dict:
    return {"NNFORGE_CACHE": str(shared_cache)}


def verify(folder, env, *extra):
    return nnforge("verify", folder, "--data", DATA, "--limit", "40", *extra, env=env)


def planted_script(canary: Path) -> str:
    # a program that would claim success: it touches the canary and writes no outputs
    return f"#!/bin/sh\ntouch '{canary}'\nexit 0\n"


def old_stamp(compiler: str, sources: list[Path], include: Path, exe: Path, flags: list[str], libs) -> str:
    """The stamp an earlier nnforge accepted next to a reusable ``build/<backend>/harness``."""
    cmd = [shutil.which(compiler), *flags, "-I", str(include), *map(str, sources), "-o", str(exe), *libs]
    h = hashlib.sha256(" ".join(cmd).encode())
    for p in sources + sorted(include.glob("*.h*")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def plant_harness(folder: Path, backend: str, canary: Path) -> Path:
    from nnforge.sim.native import C_FLAGS, CXX_FLAGS, HARNESS

    src = folder / backend
    build = folder / "build" / backend
    build.mkdir(parents=True)
    exe = build / "harness"
    exe.write_text(planted_script(canary))
    exe.chmod(0o755)
    if backend == "c":
        stamp = old_stamp("gcc", [src / "nnforge_model.c", HARNESS / "harness.c"], src, exe, C_FLAGS, ["-lm"])
    else:
        stamp = old_stamp("g++", [src / "nnforge_hls.cpp", HARNESS / "harness.c"], src, exe,
                          [*CXX_FLAGS, "-DNNFORGE_HARNESS_HLS", "-x", "c++"], [])
    (build / "harness.stamp").write_text(stamp)
    return exe


def verified_ok(out, backends=("golden", "c", "hls")) -> dict:
    doc = json.loads(out.out)
    assert out.rc == 0, out.err
    assert set(doc["backends"]) == set(backends)
    assert all(b["mismatches"] == 0 and b["samples"] == 40 for b in doc["backends"].values())
    return doc


# ---- nothing that came with the folder runs ---------------------------------------------

@pytest.mark.parametrize("backend", ["c", "hls"])
def test_planted_harness_with_matching_stamp_is_not_run(copy_compiled, canary, env, backend):
    plant_harness(copy_compiled, backend, canary)
    before = tree(copy_compiled)
    out = verify(copy_compiled, env, "--json", "-q")
    doc = verified_ok(out)
    assert not canary.exists()
    assert doc["backends"][backend]["modified"] == []
    assert tree(copy_compiled) == before  # nothing written into the folder (no build/ reuse)


def test_trace_does_not_run_planted_harness(copy_compiled, canary, env):
    for b in ("c", "hls"):
        plant_harness(copy_compiled, b, canary)
        trace = copy_compiled / "build" / f"{b}-trace"
        shutil.copytree(copy_compiled / "build" / b, trace)
    out = verify(copy_compiled, env, "--trace", "--json", "-q")
    doc = verified_ok(out)
    assert not canary.exists()
    assert set(doc["trace"]["backends"]) == {"c", "hls"}


def test_planted_system_header_is_not_included(copy_compiled, canary, env):
    (copy_compiled / "c" / "stdint.h").write_text(
        "#include_next <stdint.h>\n#include <stdlib.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ (void)!system("touch {canary}"); }}\n')
    verified_ok(verify(copy_compiled, env, "--json", "-q"))
    assert not canary.exists()


def test_planted_extra_c_file_is_not_compiled(copy_compiled, canary, env):
    (copy_compiled / "c" / "evil.c").write_text(
        "#include <stdlib.h>\n"
        f'__attribute__((constructor)) static void planted(void) {{ (void)!system("touch {canary}"); }}\n')
    (copy_compiled / "hls" / "evil.cpp").write_text((copy_compiled / "c" / "evil.c").read_text())
    verified_ok(verify(copy_compiled, env, "--json", "-q"))
    assert not canary.exists()


def test_source_replaced_by_symlink_is_refused(copy_compiled, canary, env, tmp_path):
    elsewhere = tmp_path / "elsewhere.c"
    elsewhere.write_text((copy_compiled / "c" / "nnforge_model.c").read_text())
    (copy_compiled / "c" / "nnforge_model.c").unlink()
    (copy_compiled / "c" / "nnforge_model.c").symlink_to(elsewhere)
    verify(copy_compiled, env, "-q").one_error("c/nnforge_model.c", "symbolic link", "refusing")
    assert not canary.exists()


def test_source_folder_replaced_by_symlink_is_refused(copy_compiled, env, tmp_path):
    moved = tmp_path / "c_elsewhere"
    shutil.move(copy_compiled / "c", moved)
    (copy_compiled / "c").symlink_to(moved)
    verify(copy_compiled, env, "-q", "--backends", "golden,c").one_error("c/", "refusing to compile")


def test_edited_source_is_warned_and_still_compared(copy_compiled, env):
    src = copy_compiled / "c" / "nnforge_model.c"
    text = src.read_text()
    first = text.index("fc2_b[10] = { ") + len("fc2_b[10] = { ")
    end = text.index(",", first)
    src.write_text(text[:first] + str(int(text[first:end]) + 5000) + text[end:])
    out = verify(copy_compiled, env, "--backends", "golden,c", "--json", "-q")
    assert out.rc == 1, out.err
    assert out.err_lines == [ln for ln in out.err_lines if ln.startswith("nnforge: warning: ")]
    assert len(out.err_lines) == 1 and "c/nnforge_model.c" in out.err_lines[0]
    doc = json.loads(out.out)
    assert doc["backends"]["c"]["mismatches"] > 0 and doc["backends"]["c"]["modified"] == ["c/nnforge_model.c"]
    assert doc["backends"]["golden"]["mismatches"] == 0 and not doc["ok"]


def test_missing_marker_is_refused(copy_compiled, env):
    (copy_compiled / "nnforge_output.json").unlink()
    verify(copy_compiled, env, "-q").one_error("not an nnforge output folder")
    nnforge("report", copy_compiled, env=env).one_error("not an nnforge output folder")


# ---- the build cache ----------------------------------------------------------------------

def test_cache_writable_by_others_is_refused(copy_compiled, canary, tmp_path):
    cache = tmp_path / "open_cache"
    cache.mkdir()
    cache.chmod(0o777)
    verify(copy_compiled, {"NNFORGE_CACHE": str(cache)}, "-q").one_error(str(cache), "writable by group or others")
    assert list(cache.iterdir()) == []


def test_new_cache_is_private(copy_compiled, tmp_path):
    cache = tmp_path / "fresh" / "cache"
    verified_ok(verify(copy_compiled, {"NNFORGE_CACHE": str(cache)}, "--json", "-q"))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_same_sources_reuse_one_entry_and_a_change_builds_another(copy_compiled, tmp_path):
    env = {"NNFORGE_CACHE": str(tmp_path / "cache")}
    args = ("--backends", "golden,c", "--json", "-q")
    verified_ok(verify(copy_compiled, env, *args), ("golden", "c"))
    first = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(first) == 1 and first[0].startswith("gcc-")
    mtime = (tmp_path / "cache" / first[0] / "harness").stat().st_mtime_ns
    verified_ok(verify(copy_compiled, env, *args), ("golden", "c"))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == first
    assert (tmp_path / "cache" / first[0] / "harness").stat().st_mtime_ns == mtime  # reused, not rebuilt
    with open(copy_compiled / "c" / "nnforge_model.c", "a") as f:
        f.write("/* edited */\n")
    out = verify(copy_compiled, env, *args)
    verified_ok(out, ("golden", "c"))
    second = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(second) == 2 and set(first) < set(second)


# ---- design.json -------------------------------------------------------------------------

def edit_design(folder: Path, fn) -> None:
    path = folder / "design.json"
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def test_design_json_not_json(copy_compiled, env):
    (copy_compiled / "design.json").write_text("{ this is not json")
    verify(copy_compiled, env, "-q").one_error("design.json", "not valid json")


def test_design_json_too_large(copy_compiled, env):
    os.truncate(copy_compiled / "design.json", 100 << 20)
    verify(copy_compiled, env, "-q").one_error("design.json", "104857600 bytes", "64 mib")


def test_design_json_nested_too_deep(copy_compiled, env):
    (copy_compiled / "design.json").write_text("[" * 100_000 + "]" * 100_000)
    verify(copy_compiled, env, "-q").one_error("design.json", "nested too deep")


def test_design_json_unknown_top_level_key(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d.update({"\x1b[31mextra": 1}))
    line = verify(copy_compiled, env, "-q").one_error("design.json", "unknown keys", "\\x1b[31mextra")
    assert "\x1b" not in line


def test_design_json_wrong_type(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["config"].update(weight_bits="8"))
    verify(copy_compiled, env, "-q").one_error("config.weight_bits", "expected an integer")


def test_design_json_config_value_out_of_range(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["config"].update(scale="log"))
    verify(copy_compiled, env, "-q").one_error("config", "scale must be 'pow2' or 'real'")


def test_design_json_unknown_op(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["quantized_graph"]["nodes"][0].update(op="System\r\nok"))
    line = verify(copy_compiled, env, "-q").one_error("quantized_graph.nodes[0]", "unknown op", "System\\x0d\\x0aok")
    assert "\n" not in line


def test_design_json_unknown_attribute(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["quantized_graph"]["nodes"][0]["attrs"].update(payload=[1]))
    verify(copy_compiled, env, "-q").one_error("quantized_graph.nodes[0]", "unknown attribute payload")


def test_design_json_attribute_of_wrong_type(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["quantized_graph"]["nodes"][0]["attrs"].update(relu="yes"))
    verify(copy_compiled, env, "-q").one_error("quantized_graph.nodes[0]", "attribute relu of dense", "wrong type")


def test_design_json_bad_shape(copy_compiled, env):
    def bad(d):
        out = d["quantized_graph"]["nodes"][0]["outputs"][0]
        d["quantized_graph"]["tensors"][out]["shape"] = [-3]
    edit_design(copy_compiled, bad)
    verify(copy_compiled, env, "-q").one_error("quantized_graph.tensors", "non-negative integers")


def test_design_json_shape_that_does_not_fit_the_op(copy_compiled, env):
    def bad(d):
        out = d["quantized_graph"]["nodes"][0]["outputs"][0]
        d["quantized_graph"]["tensors"][out]["shape"] = [33]
    edit_design(copy_compiled, bad)
    verify(copy_compiled, env, "-q").one_error("quantized_graph", "not a valid graph", "fc0", "[(33,)]")


def test_design_json_huge_shape(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["float_graph"]["tensors"]["input"].update(shape=[1 << 20, 1 << 20]))
    verify(copy_compiled, env, "-q").one_error("float_graph.tensors[input].shape", "1099511627776 elements")


def test_design_json_type_out_of_range(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["quantized_graph"]["tensors"]["input"].update(qtype=[99, 7, False]))
    verify(copy_compiled, env, "-q").one_error("quantized_graph.tensors[input].qtype", "out of range")


# ---- design_arrays.npz -------------------------------------------------------------------

def rewrite_npz(folder: Path, fn) -> None:
    path = folder / "design_arrays.npz"
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    fn(members)
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)


def npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def test_npz_missing_array(copy_compiled, env):
    rewrite_npz(copy_compiled, lambda m: m.pop("quant/0.npy"))
    verify(copy_compiled, env, "-q").one_error("quantized_graph", "array quant/0", "is missing")


def test_npz_not_a_zip(copy_compiled, env):
    (copy_compiled / "design_arrays.npz").write_bytes(npy_bytes(np.zeros(3)))
    verify(copy_compiled, env, "-q").one_error("design_arrays.npz", "is a single .npy array, not a .npz")


def test_npz_pickled_object_array(copy_compiled, canary, env):
    class Planted:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    rewrite_npz(copy_compiled, lambda m: m.update({"quant/0.npy": npy_bytes(np.array([Planted()], dtype=object))}))
    verify(copy_compiled, env, "-q").one_error("design_arrays.npz: 'quant/0'", "python objects")
    assert not canary.exists()


def test_npz_header_announcing_1e12_elements(copy_compiled, env):
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1000000000000,), }"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 64
    rewrite_npz(copy_compiled, lambda m: m.update({"quant/0.npy": member}))
    out = verify(copy_compiled, env, "-q")
    out.one_error("design_arrays.npz: 'quant/0'", "announces 1000000000000 values", "but the member holds 64 bytes")
    assert out.seconds < 30


def test_npz_array_with_wrong_shape(copy_compiled, env):
    rewrite_npz(copy_compiled, lambda m: m.update({"quant/0.npy": npy_bytes(np.zeros((3, 3), np.int64))}))
    verify(copy_compiled, env, "-q").one_error("array quant/0", "has shape [3, 3]", "the design says")


def test_npz_unexpected_member(copy_compiled, env):
    rewrite_npz(copy_compiled, lambda m: m.update({"extra.npy": npy_bytes(np.zeros(2))}))
    verify(copy_compiled, env, "-q").one_error("design_arrays.npz", "unexpected arrays extra")


def test_npz_member_that_is_not_npy(copy_compiled, env):
    rewrite_npz(copy_compiled, lambda m: m.update({"run.sh": b"#!/bin/sh\n"}))
    verify(copy_compiled, env, "-q").one_error("design_arrays.npz", "member 'run.sh' is not a .npy array")


# ---- report.json -------------------------------------------------------------------------

def test_report_json_malformed(copy_compiled, env):
    path = copy_compiled / "report.json"
    doc = json.loads(path.read_text())
    doc["precision"]["layers"][0]["name"] = 5
    path.write_text(json.dumps(doc))
    nnforge("report", copy_compiled, env=env).one_error("report.json", "precision.layers[0].name", "expected a string")


def test_report_json_not_json(copy_compiled, env):
    (copy_compiled / "report.json").write_text("[[[")
    nnforge("report", copy_compiled, env=env).one_error("report.json", "not valid json")


def test_report_names_are_escaped(copy_compiled, env):
    path = copy_compiled / "report.json"
    doc = json.loads(path.read_text())
    doc["precision"]["layers"][0]["name"] = "fc0\x1b[2J\nfake line"
    doc["precision"]["worst_layer"] = "\x1b]0;title\x07"
    path.write_text(json.dumps(doc))
    out = nnforge("report", copy_compiled, env=env).ok()
    assert "\x1b" not in out.out and "\x07" not in out.out
    assert not any(ln.startswith("fake line") for ln in out.out.splitlines())


# ---- files of a folder that are not regular files ----------------------------------------

@pytest.mark.parametrize("name, command", [
    ("design.json", "verify"), ("design.json", "report"), ("design_arrays.npz", "verify"),
    ("design_arrays.npz", "report"), ("report.json", "report")])
def test_fifo_in_place_of_a_design_file(copy_compiled, env, name, command):
    (copy_compiled / name).unlink()
    os.mkfifo(copy_compiled / name)
    out = verify(copy_compiled, env, "-q") if command == "verify" else nnforge("report", copy_compiled, "-q", env=env)
    out.one_error(f"{name}: is a FIFO, not a regular file; refused")
    assert out.seconds < 30


def test_design_json_symlink_is_refused(copy_compiled, env, tmp_path):
    elsewhere = tmp_path / "design.json"
    shutil.move(copy_compiled / "design.json", elsewhere)
    (copy_compiled / "design.json").symlink_to(elsewhere)
    verify(copy_compiled, env, "-q").one_error("design.json: is a symbolic link; refused")


# ---- edited design files -------------------------------------------------------------------

def test_edited_design_json_is_warned_even_quiet(copy_compiled, env):
    path = copy_compiled / "design.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))  # the same design, other bytes
    out = verify(copy_compiled, env, "--backends", "golden,c", "--json", "-q")
    verified_ok(out, ("golden", "c"))
    assert out.err_lines == [f"nnforge: warning: {copy_compiled}: 1 design file(s) differ from what nnforge "
                             f"wrote, loaded as they are: design.json"]
    out = nnforge("report", copy_compiled, "-q", env=env).ok()
    assert out.err_lines == [f"nnforge: warning: {copy_compiled}: 1 design file(s) differ from what nnforge "
                             f"wrote, loaded as they are: design.json"]


def test_edited_design_arrays_are_warned(copy_compiled, env):
    rewrite_npz(copy_compiled, lambda m: None)  # the same arrays, stored instead of deflated
    out = nnforge("report", copy_compiled, "-q", env=env).ok()
    assert out.err_lines == [f"nnforge: warning: {copy_compiled}: 1 design file(s) differ from what nnforge "
                             f"wrote, loaded as they are: design_arrays.npz"]


# ---- numbers out of range in design files --------------------------------------------------

def test_design_json_integer_of_5000_digits(copy_compiled, env):
    path = copy_compiled / "design.json"
    path.write_text(path.read_text().replace('"acc_width": ', '"acc_width": ' + "9" * 5000 + ", \"x\": ", 1))
    line = verify(copy_compiled, env, "-q").one_error("design.json: holds a number too long to read",
                                                   "exceeds the limit (4300 digits)", "value has 5000 digits")
    assert len(line) < 400


@pytest.mark.parametrize("value, shown", [(10**40, "a 133-bit integer"), (63, "63"), (-1, "-1")])
def test_design_json_acc_width_out_of_range(copy_compiled, env, value, shown):
    edit_design(copy_compiled, lambda d: d["quantized_graph"]["nodes"][0]["attrs"].update(acc_width=value))
    verify(copy_compiled, env, "-q").one_error("quantized_graph.nodes[0] (fc0)",
                                               f"attribute acc_width holds {shown}, outside [0, 62] (Dense)")


def test_design_json_type_bounds_out_of_range(copy_compiled, env):
    edit_design(copy_compiled, lambda d: d["quantized_graph"]["tensors"]["input"].update(
        qtype=[8, 4, True, [-(10**30), 5], 0, 0.0]))
    verify(copy_compiled, env, "-q").one_error("quantized_graph.tensors[input].qtype", "out of range",
                                               "|bounds| < 2^62")


def test_report_json_acc_width_out_of_range(copy_compiled, env):
    path = copy_compiled / "report.json"
    doc = json.loads(path.read_text())
    doc["precision"]["layers"][0]["acc_width"] = 10**40
    path.write_text(json.dumps(doc))
    nnforge("report", copy_compiled, "-q", env=env).one_error("report.json: precision.layers[0].acc_width",
                                                              "expected an integer 0..62 or a string")


# ---- design_arrays.npz the data reader refuses too ----------------------------------------

@pytest.mark.parametrize("kind, fragment", [("encrypted", "is encrypted"), ("method", "compression method 99")])
def test_npz_encrypted_or_unknown_method(copy_compiled, env, kind, fragment):
    path = copy_compiled / "design_arrays.npz"
    if kind == "encrypted":
        patch_zip(path, {6: b"\x01\x00"}, {8: b"\x01\x00"})
    else:
        patch_zip(path, {8: b"\x63\x00"}, {10: b"\x63\x00"})
    verify(copy_compiled, env, "-q").one_error("design_arrays.npz: member", fragment)


# ---- verilog/verilog_info.json --------------------------------------------------------------

def edit_info(folder: Path, fn) -> None:
    path = folder / "verilog" / "verilog_info.json"
    doc = json.loads(path.read_text())
    new = fn(doc)
    path.write_text(json.dumps(doc if new is None else new))


XILINX = "xc7k70tfbg676-1"  # an AMD part nnforge has no figures for: synth writes a Vivado script, nothing runs


def planted_verilog(canary: Path) -> str:
    return f'module outside; initial begin $system("touch {canary}"); end endmodule\n'


@pytest.mark.parametrize("command", ["verify", "synth"])
def test_verilog_info_naming_a_file_outside_the_folder(copy_verilog, env, canary, tmp_path, command):
    outside = tmp_path / "x" / "outside.v"
    outside.parent.mkdir()
    outside.write_text(planted_verilog(canary))
    edit_info(copy_verilog, lambda d: d.update(files=[str(outside), *d["files"]]))
    out = (verify(copy_verilog, env, "-q", "--backends", "golden,verilog") if command == "verify"
           else nnforge("synth", copy_verilog, "--fpga", XILINX, "-q", env=env))
    out.one_error("verilog/verilog_info.json: files: expected a list of plain file names")
    assert not canary.exists() and not (copy_verilog / "synth").exists()


def test_synth_refuses_a_source_the_manifest_does_not_list(copy_verilog, env, canary):
    (copy_verilog / "verilog" / "extra.v").write_text(planted_verilog(canary))
    edit_info(copy_verilog, lambda d: d.update(files=["extra.v", *d["files"]]))
    nnforge("synth", copy_verilog, "--fpga", XILINX, "-q", env=env).one_error(
        "verilog_info.json: files: extra.v is not among the files nnforge wrote there")
    assert not (copy_verilog / "synth").exists()


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: [], "the file: expected an object"),
    (lambda d: {k: v for k, v in d.items() if k != "layers"}, "layers: expected a list of objects"),
    (lambda d: d.update(top="nnforge_top; rm -rf ~"), "top: expected a verilog identifier"),
    (lambda d: d.update(files=["../verilog/nnforge_top.v"]), "files: expected a list of plain file names"),
    (lambda d: d.update(n_in="784"), "n_in: expected an integer 1..2147483648"),
    (lambda d: d["totals"].update(ii_cycles=10**30), "totals.ii_cycles: expected an integer"),
    (lambda d: d["layers"][0].update(layout=[0, 0]), "layers[0].layout: expected a permutation of axes"),
], ids=["list", "no-layers", "top", "dotdot", "n_in", "ii", "layout"])
def test_verilog_info_malformed(copy_verilog, env, edit, fragment):
    edit_info(copy_verilog, edit)
    verify(copy_verilog, env, "-q", "--backends", "golden,verilog").one_error("verilog_info.json: " + fragment)
    nnforge("synth", copy_verilog, "--fpga", XILINX, "-q", env=env).one_error("verilog_info.json: " + fragment)


def test_verilog_info_fifo(copy_verilog, env):
    info = copy_verilog / "verilog" / "verilog_info.json"
    info.unlink()
    os.mkfifo(info)
    out = nnforge("synth", copy_verilog, "--fpga", XILINX, "-q", env=env)
    out.one_error("verilog_info.json: is a FIFO, not a regular file; refused")
    verify(copy_verilog, env, "-q", "--backends", "golden,verilog").one_error(
        "verilog/verilog_info.json is not a regular file inside the folder")
