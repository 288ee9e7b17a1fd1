"""Output folders: nnforge replaces only folders it wrote (a marker with the SHA-256 of every
file), never one holding an input or the current folder, and crash-safely: killed at any
instant the old or the new folder is whole under its name; SIGTERM / SIGHUP clean up like
Ctrl-C. Filesystem errors a user can cause are one line and exit 2."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .harness import TIMEOUT, child_env, limits, nnforge, python, tree

from nnforge.sim import files
from nnforge.sim.files import MARKER, check_replaceable, modified_files, publish_in_output, read_manifest, temp_dir

# ---- helpers -----------------------------------------------------------------------------


def compile_(mlp, out, *extra, targets="c", cwd=None):
    return nnforge("compile", mlp["model"], "-o", out, "--targets", targets, "--calibration", mlp["cal"], "-q",
                   *extra, cwd=cwd)


def leftovers(*folders) -> list[str]:
    """nnforge's temporary names (``.nnforge-*``) anywhere under ``folders``."""
    return [str(p) for f in folders if Path(f).is_dir() for p in Path(f).rglob(".nnforge-*")]


def whole(folder: Path) -> set[str]:
    """Assert ``folder`` is a complete nnforge output (its manifest lists exactly its files,
    unchanged); returns the listed paths."""
    listed = read_manifest(folder)
    assert modified_files(folder) == []
    assert set(tree(folder)) - {MARKER} == set(listed)
    return set(listed)


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def spawn(argv, umask: int | None = None, code: str | None = None) -> subprocess.Popen:
    """``python -m nnforge ARGV`` (or ``python -c CODE``) under the suite's limits, stderr
    piped (to watch progress)."""
    def pre():
        limits()
        if umask is not None:
            os.umask(umask)
    cmd = ["-c", code] if code is not None else ["-m", "nnforge", *map(str, argv)]
    return subprocess.Popen([sys.executable, *cmd], env=child_env(None), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=pre)


def spawn_held(argv, line: str, fifo: Path) -> subprocess.Popen:
    """``nnforge ARGV`` in a child held for good right after its progress line holding
    ``line``: it then opens the FIFO ``fifo`` for reading, which blocks since nothing opens
    it for writing, so a signal sent once that line is read finds the child at that step,
    however fast or loaded the machine. (The hold is patched in by the child's own code;
    nnforge has no hook for it.)"""
    hold = f"""
        from nnforge.sim.progress import Progress
        def held(self, msg, _real=Progress.__call__):
            _real(self, msg)
            if {line!r} in msg:
                open({str(fifo)!r}).close()
        Progress.__call__ = held"""
    return spawn(None, code=snippet(hold, argv))


def wait_for_line(p: subprocess.Popen, fragment: str) -> list[str]:
    """Read ``p``'s stderr until a line holds ``fragment``; returns the lines read."""
    sel = selectors.DefaultSelector()
    sel.register(p.stderr, selectors.EVENT_READ)
    lines, deadline = [], time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if sel.select(timeout=1.0):
            line = p.stderr.readline()
            if not line:
                break
            lines.append(line)
            if fragment in line:
                return lines
    p.kill()
    pytest.fail(f"no line with {fragment!r} on stderr: {''.join(lines)[-2000:]}")


def finish(p: subprocess.Popen) -> str:
    """Wait for ``p`` to end (it must: a held child ends only by the signal); its stderr."""
    try:
        return p.communicate(timeout=TIMEOUT)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail(f"the child did not end within {TIMEOUT:.0f} s of the signal")


def snippet(body: str, argv) -> str:
    """Python that patches nnforge (``body``) and then runs ``nnforge ARGV`` in-process."""
    return (f"import os, signal, sys\nfrom nnforge import cli, design\nfrom nnforge.sim import files\n"
            f"{textwrap.dedent(body)}\nsys.exit(cli.main({[str(a) for a in argv]!r}))\n")


@pytest.fixture
def old(copy_compiled) -> Path:
    """A compiled folder (C and HLS C++) to be replaced; its tree is kept as ``old.before``."""
    return copy_compiled


# ---- folders that are not (only) nnforge's: refused, nothing lost --------------------------


def test_user_folder_with_design_json_is_kept_whole(mlp, tmp_path):
    out = tmp_path / "work"
    (out / "notes").mkdir(parents=True)
    (out / "design.json").write_text('{"my": "own design"}')
    (out / "notes" / "thesis.tex").write_text("three years of work")
    before = tree(out)
    compile_(mlp, out).one_error(str(out), "not an nnforge output folder", "refusing")
    assert tree(out) == before


def test_old_format_folder_is_refused(mlp, tmp_path, compiled_mlp):
    out = tmp_path / "old_format"
    out.mkdir()
    shutil.copy(compiled_mlp / "design.json", out / "design.json")
    compile_(mlp, out).one_error("no nnforge_output.json", "it holds design.json")
    assert list(tree(out)) == ["design.json"]


@pytest.mark.parametrize("marker, why", [
    (b"{not json", "not a valid"),
    (json.dumps({"format": "nnforge-output", "version": 1, "files": {"../x": "0" * 64}}).encode(), "not a valid"),
    (json.dumps({"format": "other", "version": 1, "files": {}}).encode(), "not a valid"),
    (b"\xff\xfe garbage \x00", "not a valid"),
])
def test_forged_or_garbled_marker(mlp, old, marker, why):
    (old / MARKER).write_bytes(marker)
    (old / "mine.txt").write_text("keep")
    before = tree(old)
    compile_(mlp, old).one_error(str(old), why, MARKER)
    assert tree(old) == before


def test_marker_and_an_extra_user_file(mlp, old):
    (old / "c" / "my_main.c").write_text("int main(void) { return 0; }\n")
    before = tree(old)
    compile_(mlp, old).one_error("c/my_main.c", "nnforge did not write", "move that file out")
    assert tree(old) == before


def test_marker_and_a_hand_edited_file(mlp, old):
    src = old / "c" / "nnforge_model.c"
    src.write_text(src.read_text() + "/* my tuning */\n")
    before = tree(old)
    compile_(mlp, old).one_error("c/nnforge_model.c", "changed since nnforge wrote it")
    assert tree(old) == before


def test_marker_and_a_user_symlink(mlp, old, tmp_path):
    (tmp_path / "elsewhere.txt").write_text("mine")
    (old / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    compile_(mlp, old).one_error("link.txt", "not a file nnforge wrote")
    assert (old / "link.txt").is_symlink() and (tmp_path / "elsewhere.txt").read_text() == "mine"


@pytest.mark.parametrize("what", ["model", "calibration", "validation"])
def test_input_inside_the_output_folder(mlp, old, what):
    src = mlp[{"model": "model", "calibration": "cal", "validation": "test"}[what]]
    (old / "inputs").mkdir()
    shutil.copy(src, old / "inputs" / src.name)
    given = old / ".." / old.name / "inputs" / src.name  # through '..'
    before = tree(old)
    argv = ["compile", given if what == "model" else mlp["model"], "-o", old, "--targets", "c", "-q",
            "--calibration", given if what == "calibration" else mlp["cal"]]
    if what == "validation":
        argv += ["--validation", given]
    nnforge(*argv).one_error(f"the {what} lies inside the output folder", src.name)
    assert tree(old) == before


def test_model_symlinked_from_inside_the_output_folder(mlp, old, tmp_path):
    shutil.copy(mlp["model"], old / "model.onnx")
    (tmp_path / "model_link.onnx").symlink_to(old / "model.onnx")
    compile_mlp = dict(mlp, model=tmp_path / "model_link.onnx")
    before = tree(old)
    compile_(compile_mlp, old).one_error("the model lies inside the output folder")
    assert tree(old) == before


@pytest.mark.parametrize("given", [".", "..", "/"])
def test_output_is_or_holds_the_current_folder(mlp, tmp_path, given):
    cwd = tmp_path / "project" / "work"
    cwd.mkdir(parents=True)
    (cwd / "train.py").write_text("print('mine')\n")
    before = tree(tmp_path / "project")
    compile_(mlp, given, cwd=cwd).one_error(f"output folder '{given}' is or holds the current folder")
    assert tree(tmp_path / "project") == before


def test_api_write_refuses_a_folder_holding_its_model(mlp, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(mlp["model"], out / "model.onnx")
    r = python(f"import numpy as np, nnforge\n"
               f"d = nnforge.compile({str(out / 'model.onnx')!r}, calibration=np.load({str(mlp['cal'])!r})['x'])\n"
               f"try:\n    d.write({str(out)!r}, targets=['c'])\n"
               f"except nnforge.sim.files.OutputFolderError as e:\n    print('refused:', e)\n")
    assert r.rc == 0 and "refused:" in r.out and "the model lies inside the output folder" in r.out, r.err
    assert list(tree(out)) == ["model.onnx"]


# ---- what -o can be --------------------------------------------------------------------------


def test_empty_existing_folder_is_used(mlp, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    compile_(mlp, out).ok()
    assert whole(out) >= {"design.json", "c/nnforge_model.c"}
    assert leftovers(tmp_path) == []


def test_recompile_over_a_compiled_folder(mlp, old):
    assert any(k.startswith("hls/") for k in whole(old))
    compile_(mlp, old).ok()
    listed = whole(old)
    assert not any(k.startswith("hls/") for k in listed) and "c/nnforge_model.c" in listed
    compile_(mlp, old).ok()  # and again over its own result
    assert leftovers(old.parent) == []


def test_symlink_output_is_followed(mlp, old, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(old)
    compile_(mlp, link).ok()
    assert link.is_symlink() and link.resolve() == old.resolve()
    assert not any(k.startswith("hls/") for k in whole(old))
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "target_made_later")
    compile_(mlp, dangling).ok()
    assert dangling.is_symlink() and "design.json" in whole(tmp_path / "target_made_later")
    assert leftovers(tmp_path) == []


def test_symlink_to_a_user_folder_is_refused(mlp, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.csv").write_text("1,2,3\n")
    (tmp_path / "link").symlink_to(mine)
    compile_(mlp, tmp_path / "link").one_error("link", "data.csv")
    assert tree(mine) == {"data.csv": b"1,2,3\n"}


def test_symlink_loop_or_to_a_file_is_refused(mlp, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    compile_(mlp, tmp_path / "loop").one_error("loop: Too many levels of symbolic links")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "to_file").symlink_to(tmp_path / "notes.txt")
    compile_(mlp, tmp_path / "to_file").one_error("to_file exists and is not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_name_of_250_bytes(mlp, tmp_path):
    out = tmp_path / ("é" * 100 + "o" * 50)  # 250 bytes in UTF-8
    assert len(os.fsencode(out.name)) == 250
    compile_(mlp, out).ok()
    compile_(mlp, out).ok()  # replacing it needs a temporary name beside it too
    assert "design.json" in whole(out) and leftovers(tmp_path) == []


def test_name_of_300_bytes(mlp, tmp_path):
    out = tmp_path / ("n" * 300)
    compile_(mlp, out).one_error("File name too long")
    assert list(tmp_path.iterdir()) == []


def test_parent_is_a_regular_file(mlp, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    compile_(mlp, tmp_path / "notes.txt" / "out").one_error("notes.txt/out", "Not a directory")
    assert tree(tmp_path) == {"notes.txt": b"mine"}


@pytest.mark.parametrize("where, why", [("/proc", "(No such file or directory)"), ("/sys", "")])
def test_output_in_a_folder_that_cannot_hold_it(mlp, where, why):
    out = Path(where) / "nnforge_hostile_out"  # /sys: EPERM or EROFS, by how it is mounted
    compile_(mlp, out).one_error(f"{out}: cannot create the output folder there", why)
    assert not out.exists()


@pytest.mark.parametrize("umask", [0o027, 0o077])
def test_umask_is_followed(mlp, tmp_path, umask):
    out = tmp_path / "new" / "out"
    p = spawn(["compile", mlp["model"], "-o", out, "--targets", "c,hls", "--calibration", mlp["cal"], "-q"], umask)
    _, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    for path in [out.parent, out, *out.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        want = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == want, f"{path}: {mode:o}, expected {want:o}"


# ---- signals: cleaned up like Ctrl-C; SIGKILL: old or new, whole --------------------------


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "hold.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_cleans_up(mlp, old, sig, fifo):
    before = tree(old)
    p = spawn_held(["compile", mlp["model"], "-o", old, "--targets", "c,hls,verilog", "--calibration", mlp["cal"]],
                   "writing C", fifo)
    wait_for_line(p, "writing C")
    p.send_signal(sig)
    err = finish(p)
    assert p.returncode == 128 + sig, err
    assert "Traceback" not in err
    messages = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]
    assert messages == ["nnforge: interrupted" if sig == signal.SIGINT else f"nnforge: stopped by {sig.name}"]
    assert tree(old) == before
    assert leftovers(old.parent, old) == []


@pytest.mark.parametrize("line, left", [("writing C", "old"), ("writing Verilog", "old"), ("wrote c", "new")])
def test_sigkill_during_a_compile(mlp, old, line, left, fifo):
    before = tree(old)
    p = spawn_held(["compile", mlp["model"], "-o", old, "--targets", "c,hls,verilog", "--calibration", mlp["cal"]],
                   line, fifo)
    wait_for_line(p, line)
    p.kill()
    finish(p)
    assert p.returncode == -signal.SIGKILL
    if left == "old":
        assert tree(old) == before
    else:
        assert any(k.startswith("verilog/") for k in whole(old))
    compile_(mlp, old).ok()
    assert not any(k.startswith(("hls/", "verilog/")) for k in whole(old))
    assert leftovers(old.parent, old) == []


KILL = "os.kill(os.getpid(), signal.SIGKILL)"
KILL_POINTS = {
    # everything written, before the swap
    "before_swap": f"""
        real = design.write_manifest
        def write_manifest(folder):
            real(folder); {KILL}
        design.write_manifest = write_manifest""",
    # right after the one-step swap, before the old folder is removed
    "after_exchange": f"""
        real = files._exchange
        def _exchange(a, b):
            assert real(a, b); {KILL}
        files._exchange = _exchange""",
    # half way through removing the old folder
    "removing_old": f"""
        def _rmtree(path):
            for p in sorted(os.listdir(path))[:2]:
                files.shutil.rmtree(os.path.join(path, p), ignore_errors=True)
                try: os.unlink(os.path.join(path, p))
                except OSError: pass
            {KILL}
        files._rmtree = _rmtree""",
    # no renameat2: between the two renames (the old folder under .old, none under its name)
    "between_renames": f"""
        files._exchange = lambda a, b: False
        real = os.rename
        def rename(a, b):
            real(a, b)
            if str(b).endswith(".old"): {KILL}
        os.rename = rename""",
    # no renameat2: the new folder in place, the old one not yet removed
    "after_renames": f"""
        files._exchange = lambda a, b: False
        def _rmtree(path): {KILL}
        files._rmtree = _rmtree""",
}


LEFT_BY_KILL = {"before_swap": "old", "after_exchange": "new", "removing_old": "new", "between_renames": "old",
                "after_renames": "new"}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_each_step_of_the_swap(mlp, old, point):
    before = tree(old)
    argv = ["compile", mlp["model"], "-o", old, "--targets", "c", "--calibration", mlp["cal"], "-q"]
    r = python(snippet(KILL_POINTS[point], argv))
    assert r.rc == -signal.SIGKILL, r.err
    if point == "between_renames":  # no folder under its name: the next write puts it back first
        assert not old.exists() and len(leftovers(old.parent)) == 2  # the new folder and the old one
        files.clean_leftovers(old.parent, old.name)
        assert leftovers(old.parent) == []
    else:
        assert len(leftovers(old.parent)) == 1  # the new folder, or the old one being removed
    if LEFT_BY_KILL[point] == "old":
        assert tree(old) == before
    else:
        assert not any(k.startswith("hls/") for k in whole(old))  # the complete new one
    compile_(mlp, old).ok()  # the next compile works and removes what the killed one left
    assert not any(k.startswith("hls/") for k in whole(old))
    assert leftovers(old.parent, old) == []


def test_leftovers_of_dead_processes_are_removed(mlp, old):
    dead = old.parent / f".nnforge-{dead_pid()}-abc123.tmp"
    (dead / "c").mkdir(parents=True)
    (dead / "c" / "half.c").write_text("int")
    live = old.parent / f".nnforge-{os.getpid()}-abc123.tmp"  # a writer still running
    live.mkdir()
    inside = old / f".nnforge-{dead_pid()}-fedcba.tmp"  # a synth killed inside the folder
    inside.mkdir()
    (inside / "yosys.log").write_text("...")
    compile_(mlp, old).ok()
    assert not dead.exists() and live.is_dir() and not inside.exists()
    whole(old)
    live.rmdir()


def test_folder_being_written_by_a_live_process_is_refused(mlp, old):
    (old / f".nnforge-{os.getpid()}-abc123.tmp").mkdir()
    compile_(mlp, old).one_error("another nnforge process", f"pid {os.getpid()}")
    assert (old / f".nnforge-{os.getpid()}-abc123.tmp").is_dir()


# ---- files nnforge adds later (synth) go through the manifest -----------------------------


def _synth_like(out: Path, part: str, text: str) -> None:
    (out / "synth").mkdir(exist_ok=True)
    new = temp_dir(out / "synth")
    (new / "synth.json").write_text(json.dumps({"part": part, "run": text}))
    (new / "nnforge_top.bit").write_bytes(text.encode() * 100)
    publish_in_output(new, out / "synth" / part, out)


def test_recompile_after_synth_results_were_added(mlp, old):
    _synth_like(old, "ecp5-25k", "first")
    _synth_like(old, "ecp5-25k", "second")  # replaces the first result
    _synth_like(old, "ice40-up5k", "other")
    listed = whole(old)
    assert {"synth/ecp5-25k/synth.json", "synth/ice40-up5k/nnforge_top.bit"} <= listed
    assert json.loads((old / "synth/ecp5-25k/synth.json").read_text())["run"] == "second"
    compile_(mlp, old).ok()
    assert not (old / "synth").exists() and leftovers(old) == []


def test_synth_result_interrupted_between_swap_and_manifest(mlp, old, monkeypatch):
    _synth_like(old, "ecp5-25k", "first")
    real = files.replace_dir

    def then_killed(*a, **k):
        real(*a, **k)
        raise KeyboardInterrupt  # stands for a kill: the manifest still lists the result as pending

    monkeypatch.setattr(files, "replace_dir", then_killed)
    with pytest.raises(KeyboardInterrupt):
        _synth_like(old, "ecp5-25k", "second")
    assert "pending" in json.loads((old / MARKER).read_text())
    check_replaceable(old)  # accepted as nnforge's
    monkeypatch.setattr(files, "replace_dir", real)
    _synth_like(old, "ecp5-25k", "third")  # settles the pending listing first
    assert "pending" not in json.loads((old / MARKER).read_text())
    assert json.loads((old / "synth/ecp5-25k/synth.json").read_text())["run"] == "third"
    whole(old)
    compile_(mlp, old).ok()


def test_synth_like_folder_added_by_hand_is_refused(mlp, old):
    (old / "synth" / "ecp5-25k").mkdir(parents=True)
    (old / "synth" / "ecp5-25k" / "synth.json").write_text("{}")
    compile_(mlp, old).one_error("synth/ecp5-25k/synth.json", "nnforge did not write")


# ---- errors the user can cause: one line, exit 2; bugs keep their traceback ----------------


@pytest.mark.parametrize("raised, rc, fragments", [
    ("MemoryError()", 2, ["out of memory in 'nnforge compile'", "fewer calibration"]),
    ("RecursionError('maximum recursion depth exceeded')", 2, ["nested too deeply", "nnforge compile"]),
    ("OSError(16, os.strerror(16), '/mnt/x\\x1b[31m\\nnnforge: all good')", 2,
     ["/mnt/x\\x1b[31m\\x0annforge: all good: Device or resource busy"]),
    ("OSError(28, os.strerror(28), 'out/c/nnforge_model.c')", 2, ["out/c/nnforge_model.c: No space left on device"]),
    ("ValueError('first line\\nsecond line')", 2, ["first line"]),
    ("RuntimeError('a bug')", 1, []),
])
def test_error_mapping(mlp, tmp_path, raised, rc, fragments):
    argv = ["compile", mlp["model"], "-o", tmp_path / "out", "--calibration", mlp["cal"], "-q"]
    r = python(snippet(f"def boom(*a, **k):\n    raise {raised}\ncli.compile = boom", argv))
    if rc == 2:
        line = r.one_error(*fragments)
        assert "second line" not in line
    else:
        assert r.rc == 1 and "Traceback" in r.err and "RuntimeError: a bug" in r.err
    assert not (tmp_path / "out").exists()


# ---- synth into a handed-over folder: nothing is written or removed through a link ---------

XILINX = "xc7k70tfbg676-1"  # an AMD part nnforge has no figures for: synth writes the Vivado script only
AMD = "xc7a35tcpg236-1"  # one it knows: synth runs Yosys (refusals come before it)


@pytest.fixture
def victim(tmp_path) -> Path:
    """A user's folder elsewhere, with a file, that links in a handed-over folder point to."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "victim.txt").write_bytes(b"the user's own words\n")
    return mine


def test_synth_does_not_write_through_a_planted_marker_temp_link(mlp, copy_verilog, victim):
    before = tree(victim)
    (copy_verilog / f".{MARKER}.tmp").symlink_to(victim / "victim.txt")
    nnforge("synth", copy_verilog, "--fpga", XILINX, "-q").ok()
    assert tree(victim) == before and os.listdir(victim) == ["victim.txt"]
    assert f"synth/{XILINX}/vivado.tcl" in read_manifest(copy_verilog)
    # the planted link is not nnforge's: a compile refuses the folder, and removes nothing
    compile_(mlp, copy_verilog).one_error(f".{MARKER}.tmp", "not a file nnforge wrote")
    assert tree(victim) == before


def test_marker_temp_name_taken_by_a_link(tmp_path, victim, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    names = iter(["abcdef", "123456"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: next(names))
    taken = out / f".{MARKER}.{os.getpid()}-abcdef.tmp"
    taken.symlink_to(victim / "victim.txt")
    before = tree(victim)
    files.write_manifest(out, {})  # the taken name is skipped, the link never opened
    assert tree(victim) == before and taken.is_symlink()
    assert read_manifest(out) == {} and sorted(os.listdir(out)) == sorted([MARKER, taken.name])


@pytest.mark.parametrize("part", [XILINX, "ecp5-25k"])
def test_synth_folder_that_is_a_link_is_refused(copy_verilog, victim, part):
    before = tree(victim)
    (copy_verilog / "synth").symlink_to(victim)
    r = nnforge("synth", copy_verilog, "--fpga", part, "-q")
    r.one_error("synth", "symbolic link or not a folder", "refusing to write through it")
    assert tree(victim) == before and os.listdir(victim) == ["victim.txt"]


@pytest.mark.parametrize("part", [XILINX, AMD])
@pytest.mark.parametrize("planted", ["synth.json", "vivado.tcl"])
def test_synth_result_folder_that_is_a_link_is_refused(copy_verilog, victim, planted, part):
    (victim / planted).write_text("{}")  # looks like an earlier result
    before = tree(victim)
    (copy_verilog / "synth").mkdir()
    (copy_verilog / "synth" / part).symlink_to(victim)
    nnforge("synth", copy_verilog, "--fpga", part, "-q").one_error(f"synth/{part}", "not a file nnforge wrote")
    assert tree(victim) == before and sorted(os.listdir(victim)) == sorted(["victim.txt", planted])
    assert leftovers(copy_verilog) == []


@pytest.mark.parametrize("raised", [
    "ToolError('gcc build failed (exit 1):\\nnnforge_model.c:3:1: error: expected ; before }')",
    "ToolError('Verilator build failed (exit 2) for the C++ harness; last lines of its log:\\n%Error: top.v:1')",
])
def test_tool_error_line_names_the_file_with_its_details(mlp, tmp_path, raised):
    argv = ["compile", mlp["model"], "-o", tmp_path / "out", "--calibration", mlp["cal"], "-q"]
    r = python(snippet(f"from nnforge.sim.tools import ToolError\ndef boom(*a, **k):\n    raise {raised}\n"
                       f"cli.compile = boom", argv))
    line = r.one_error("failed (exit", "(details: ")
    details = Path(line.split("(details: ")[1].rstrip(")"))
    try:
        assert details.read_text() == eval(raised, {"ToolError": str}).rstrip() + "\n"
        assert details.stat().st_mode & 0o077 == 0  # private: a log may hold paths and sources
    finally:
        details.unlink()
