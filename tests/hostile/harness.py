"""The hostile-input suite's harness: every case runs nnforge in a child process under a 4 GiB
address-space limit and a 60 s timeout, and asserts the exact outcome (exit status, the
one line on stderr, what is on disk afterwards, that nothing planted ran).

Helpers here, not in the tests: :func:`nnforge` runs the command line, :func:`python`
runs a snippet of Python (for the API), both in a process of their own with the limits set
before it starts: a fork of one interpreter per test worker that has imported numpy, onnx
and nnforge under those limits and runs nothing else (:data:`FORK_SERVER`), so that the
suite pays those imports once, not once per case. What happens while an interpreter starts
(import-time reads of the environment, modules shadowed by the case's folder) is therefore
not exercised by a forked case: ``NNFORGE_HOSTILE_FRESH=1`` runs every case in a fresh
interpreter instead, and a case that sets ``PYTHON*`` variables always gets one."""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ADDRESS_SPACE = 4 << 30  # bytes
TIMEOUT = 60.0  # seconds, per case
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass
class Outcome:
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]

    def one_error(self, *fragments: str) -> str:
        """Exit 2 with exactly one line on stderr, ``nnforge: error: ...``, holding every
        fragment (case-insensitive); returns the line."""
        assert self.rc == 2, f"exit {self.rc}, expected 2\nstdout: {self.out[-2000:]}\nstderr: {self.err[-4000:]}"
        assert "Traceback" not in self.err, self.err[-4000:]
        lines = self.err_lines
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{self.err[-4000:]}"
        line = lines[0]
        assert line.startswith("nnforge: error: "), line
        for f in fragments:
            assert f.lower() in line.lower(), f"{f!r} not in {line!r}"
        assert "\x1b" not in line and "\r" not in line
        return line

    def ok(self) -> "Outcome":
        assert self.rc == 0, f"exit {self.rc}\nstdout: {self.out[-2000:]}\nstderr: {self.err[-4000:]}"
        assert "Traceback" not in self.err
        return self


def child_env(extra: dict | None) -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["PYTHONWARNINGS"] = "default"  # warnings must not be hidden from the cases
    env.pop("NNFORGE_VERILATOR_CACHE", None)
    env.update(extra or {})
    return env


def run(argv: list, cwd=None, env: dict | None = None, timeout: float = TIMEOUT, **popen) -> Outcome:
    """Run ``argv`` under the suite's limits; a run that outlives ``timeout`` fails the case."""
    t0 = time.monotonic()
    # a session (process group) of its own: a timeout ends what it started too (a compiler, a simulator)
    with subprocess.Popen([str(a) for a in argv], cwd=cwd, env=child_env(env), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, errors="replace", preexec_fn=limits,
                          start_new_session=True, **popen) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException as e:
            kill_group(p.pid)
            try:  # a process that left the group may still hold the pipes: do not wait on it
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                for f in (p.stdout, p.stderr):
                    f.close()
            if isinstance(e, subprocess.TimeoutExpired):
                pytest.fail(f"{argv[2:] if len(argv) > 2 else argv} did not end within {timeout:.0f} s")
            raise
    return Outcome(p.returncode, out, err, time.monotonic() - t0)


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid`` (a case's child and what it started)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _fresh(env: dict | None) -> bool:
    """A fresh interpreter: asked for, or a case setting ``PYTHON*`` variables (they act only
    when an interpreter starts, so a fork of the server would ignore them)."""
    return os.environ.get("NNFORGE_HOSTILE_FRESH") == "1" or any(k.startswith("PYTHON") for k in env or {})


def nnforge(*args, cwd=None, env: dict | None = None, timeout: float = TIMEOUT) -> Outcome:
    """``python -m nnforge ARGS`` under the limits."""
    if _fresh(env):
        return run([sys.executable, "-m", "nnforge", *args], cwd=cwd, env=env, timeout=timeout)
    return _forked({"module": "nnforge", "argv": [str(a) for a in args]}, cwd, env, timeout)


def python(code: str, cwd=None, env: dict | None = None, timeout: float = TIMEOUT) -> Outcome:
    """A snippet of Python (the API) under the limits."""
    if _fresh(env):
        return run([sys.executable, "-c", code], cwd=cwd, env=env, timeout=timeout)
    return _forked({"code": code, "argv": []}, cwd, env, timeout)


# The fork server: reads one job a line (JSON) on stdin, forks, and in the fork sets the
# job's folder and environment, points fds 0 / 1 / 2 at /dev/null and the job's two capture
# files, runs ``python -m MODULE ARGV`` / ``python -c CODE`` as the interpreter would
# (SystemExit, an uncaught exception's traceback and exit 1, atexit handlers), and exits;
# the server answers with the fork's exit status (negative: the signal that ended it), or
# kills it at the job's timeout with its process group (what it started goes too).
FORK_SERVER = r"""
import atexit, builtins, json, os, runpy, signal, sys, time, traceback, types
import numpy, onnx
import nnforge, nnforge.cli, nnforge.frontend

def job(spec):
    os.setpgid(0, 0)  # a group of its own (the server sets it too), killed whole at the timeout
    try:  # the job ends with the server (killed when a case is interrupted)
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, spec["out"]), (2, spec["err"])):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
    rc = 0
    try:
        if "module" in spec:
            sys.argv = ["-m", *spec["argv"]]
            runpy.run_module(spec["module"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c"]
            main = types.ModuleType("__main__")
            main.__builtins__ = builtins
            sys.modules["__main__"] = main
            exec(compile(spec["code"], "<string>", "exec"), main.__dict__)
    except SystemExit as e:
        if e.code is None:
            rc = 0
        elif isinstance(e.code, int):
            rc = e.code
        else:
            print(e.code, file=sys.stderr)
            rc = 1
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # from the job's own frame
        rc = 1
    atexit._run_exitfuncs()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(rc & 0xFF)

for line in sys.stdin:
    spec = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            job(spec)
        finally:
            os._exit(70)
    try:
        os.setpgid(pid, pid)
    except OSError:  # the fork set it first, or has already ended
        pass
    deadline, status = time.monotonic() + spec["timeout"], None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
        elif time.monotonic() > deadline:
            try:  # the fork and every process it started (a compiler, a simulator)
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:  # already ended
                pass
            os.waitpid(pid, 0)
            break
        else:
            time.sleep(0.005)
    sys.stdout.write(json.dumps({"id": spec["out"], "rc": status}) + "\n")
    sys.stdout.flush()
"""

_server: dict = {}


def _stop_server() -> None:
    p = _server.pop("p", None)
    if p is not None and p.poll() is None:
        p.stdin.close()  # the server ends at the end of its input
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _fork_server() -> subprocess.Popen:
    p = _server.get("p")
    if p is None or p.poll() is not None:
        p = subprocess.Popen([sys.executable, "-c", FORK_SERVER], cwd=ROOT / "tests", env=child_env(None),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=limits)
        _server["p"] = p
        if not _server.get("registered"):
            atexit.register(_stop_server)
            _server["registered"] = True
    return p


def _forked(spec: dict, cwd, env: dict | None, timeout: float) -> Outcome:
    """Run ``spec`` in a fork of the server (see :data:`FORK_SERVER`), with what :func:`run`
    gives a fresh interpreter: ``cwd`` (default: this process's folder), the environment
    of :func:`child_env`, the limits, the timeout."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hostile_case_") as tmp:
        out, err = Path(tmp) / "out", Path(tmp) / "err"
        spec = {**spec, "cwd": str(cwd or os.getcwd()), "env": child_env(env), "timeout": timeout,
                "out": str(out), "err": str(err)}
        t0 = time.monotonic()
        server = _fork_server()
        try:
            server.stdin.write(json.dumps(spec) + "\n")
            server.stdin.flush()
            answer = server.stdout.readline()
        except BaseException:  # e.g. the case's own alarm: the answer is never read, start afresh
            server.kill()
            _stop_server()
            raise
        seconds = time.monotonic() - t0
        if not answer:
            _stop_server()
            pytest.fail(f"the hostile suite's fork server ended (exit {server.wait()})")
        answer = json.loads(answer)
        assert answer["id"] == spec["out"], "the fork server answered another job"
        rc = answer["rc"]
        if rc is None:
            what = spec["argv"] if "module" in spec else spec["code"][:200]
            pytest.fail(f"{what} did not end within {timeout:.0f} s")
        read = lambda p: p.read_bytes().decode("utf-8", "replace") if p.exists() else ""  # noqa: E731
        return Outcome(rc, read(out), read(err), seconds)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> contents), to compare before / after."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def call(module: str, func: str, *args) -> Outcome:
    """``module.func(*args)`` in a child under the limits, for a case whose checks are
    Python assertions (``args`` plain values, passed by their repr); the case passes when
    the child ends with exit 0."""
    code = f"import {module} as m\nm.{func}(*{args!r})\n"
    return run([sys.executable, "-c", code], cwd=ROOT / "tests")


def patch_zip(path: Path, local: dict[int, bytes], central: dict[int, bytes]) -> Path:
    """Overwrite fields of every local header / central directory entry (offset -> bytes)."""
    raw = bytearray(path.read_bytes())
    for sig, fields in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        i = raw.find(sig)
        while i >= 0:
            for off, b in fields.items():
                raw[i + off:i + off + len(b)] = b
            i = raw.find(sig, i + 4)
    path.write_bytes(bytes(raw))
    return path
