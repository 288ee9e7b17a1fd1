"""Run the ONNX backend test suite (shipped inside the ``onnx`` package) on nnforge's
float interpreter, for every case whose ops are all ones nnforge supports, and print the
pass count per op with every case that did not pass and why.

    python scripts/onnx_conformance.py [--kinds node,pytorch-converted,pytorch-operator,light]
                                       [--json] [--verbose]
    python scripts/onnx_conformance.py --c [--models resnet50,vgg19,...] [--no-build]
                                       [--outdir DIR] [--json]

``light`` is the real-model graphs shipped in the package (resnet50, squeezenet, ...,
with constant weights): each runs on the input the ONNX test runner uses for them
(``arange(n) / n``) and is compared with its stored output.

A case is *passed* when every output of every data set matches within the case's own
tolerance, *refused* when the importer declines it with a reason (something nnforge
does not support, e.g. a Softmax over the batch axis), and *failed* otherwise (a wrong
result or an unexpected error). The exit status is 1 if any case failed.

``--c`` takes the light models through the C backend instead: each is compiled at 8 bits
(calibrated on the runner input), the C sources are written, built with gcc through
nnforge's harness and run on that input, and the C output integers must equal the golden
integer model's exactly. Per model it prints the time of every step and the size of the
C source; a model is *refused* when the compile or the C backend declines it with a reason
(e.g. LRN, which has no integer implementation) and *failed* on any difference or error.
``--no-build`` stops after writing the C (for models too large to build quickly).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Outcome:
    name: str
    kind: str
    ops: tuple[str, ...]
    status: str  # passed | refused | failed
    reason: str = ""


def _load_data_sets(case):
    if case.data_sets is not None:
        return case.model, case.data_sets
    import onnx
    from onnx import numpy_helper

    model = onnx.load(os.path.join(case.model_dir, "model.onnx"))
    sets = []
    for d in sorted(glob.glob(os.path.join(case.model_dir, "test_data_set_*"))):
        def read(prefix):
            arrays = []
            for f in sorted(glob.glob(os.path.join(d, f"{prefix}_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3])):
                t = onnx.TensorProto()
                with open(f, "rb") as fh:
                    t.ParseFromString(fh.read())
                arrays.append(numpy_helper.to_array(t))
            return arrays
        sets.append((read("input"), read("output")))
    return model, sets


@dataclass
class LightCase:
    name: str
    kind: str = "light"
    rtol: float = 1e-3
    atol: float = 1e-7


# tolerances as the ONNX test runner sets them for these models
LIGHT_RTOL = {"densenet121": 2e-3}


def light_cases():
    """The light_* models with their runner input and stored output."""
    import onnx
    from onnx import numpy_helper

    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    for path in sorted(glob.glob(os.path.join(folder, "light_*.onnx"))):
        name = os.path.basename(path)[len("light_"):-len(".onnx")]
        model = onnx.load(path)
        inits = {i.name for i in model.graph.initializer}
        (inp,) = [i for i in model.graph.input if i.name not in inits]
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in inp.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        x = (np.arange(n).reshape(shape) / n).astype(np.float32)
        ref = onnx.TensorProto()
        with open(path[:-len(".onnx")] + "_output_0.pb", "rb") as fh:
            ref.ParseFromString(fh.read())
        ops = tuple(sorted({nd.op_type for nd in model.graph.node}))
        yield LightCase(f"light_{name}", rtol=LIGHT_RTOL.get(name, 1e-3)), model, [([x], [numpy_helper.to_array(ref)])], ops


def in_scope_cases(kinds):
    from onnx.backend.test.loader import load_model_tests

    from nnforge.frontend import SUPPORTED_OPS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in kinds:
            if kind == "light":  # real models: every one is run, whatever its ops
                yield from light_cases()
                continue
            for case in load_model_tests(kind=kind):
                model, sets = _load_data_sets(case)
                ops = tuple(sorted({n.op_type for n in model.graph.node}))
                if ops and all(op in SUPPORTED_OPS for op in ops):
                    yield case, model, sets, ops


def run_case(case, model, sets, ops) -> Outcome:
    from nnforge.frontend import ModelImportError
    from nnforge.frontend.onnx_backend import NnforgeBackend

    from onnx import TensorProto, numpy_helper

    def arrays(values):
        return [numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v) for v in values]

    try:
        rep = NnforgeBackend.prepare(model)
    except ModelImportError as e:
        return Outcome(case.name, case.kind, ops, "refused", str(e).splitlines()[0])
    except Exception as e:  # an unexpected error is a failure, not a refusal
        return Outcome(case.name, case.kind, ops, "failed", f"{type(e).__name__}: {e}")
    for i, (inputs, outputs) in enumerate(sets):
        try:
            got = rep.run(arrays(inputs))
            want_all = arrays(outputs)
            if len(got) != len(want_all):
                raise AssertionError(f"{len(got)} outputs, expected {len(want_all)}")
            for g, want in zip(got, want_all):
                np.testing.assert_allclose(g, want, rtol=case.rtol, atol=case.atol)
        except ModelImportError as e:
            return Outcome(case.name, case.kind, ops, "refused", str(e).splitlines()[0])
        except AssertionError as e:
            return Outcome(case.name, case.kind, ops, "failed", f"data set {i}: {str(e).strip().splitlines()[0]}")
        except Exception as e:
            return Outcome(case.name, case.kind, ops, "failed", f"data set {i}: {type(e).__name__}: {e}")
    return Outcome(case.name, case.kind, ops, "passed")


def run_all(kinds) -> list[Outcome]:
    return [run_case(*c) for c in in_scope_cases(kinds)]


# ---- the light models through the C backend (--c) -------------------------------------

@dataclass
class CResult:
    name: str
    status: str  # passed | refused | failed | written (--no-build: C written, not built)
    reason: str = ""
    seconds: dict = field(default_factory=dict)  # step -> wall seconds
    c_bytes: int = 0  # size of nnforge_model.c
    macs: int = 0


class _Clock:
    """A progress callback that records when each message arrived (``compile`` reports
    'imported ...' after the import and 'quantized ...' at the end)."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.marks: list[tuple[str, float]] = []

    def __call__(self, msg: str) -> None:
        self.marks.append((msg, time.monotonic()))

    def split(self) -> dict:
        out, last = {}, self.t0
        for msg, t in self.marks:
            key = "import" if msg.startswith("imported") else "quantize"
            out[key] = round(out.get(key, 0) + t - last, 2)
            last = t
        return out


def light_input(name: str):
    """(model, runner input) of ``light_<name>``."""
    for case, model, sets, _ in light_cases():
        if case.name == f"light_{name}":
            return model, sets[0][0][0]
    raise KeyError(name)


def light_names() -> list[str]:
    import onnx

    folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
    paths = glob.glob(os.path.join(folder, "light_*.onnx"))
    return sorted(os.path.basename(p)[len("light_"):-len(".onnx")] for p in paths)


def check_light_c(name: str, outdir, build: bool = True, bits: int = 8) -> CResult:
    """Compile ``light_<name>`` at ``bits``, write its C, build and run it with gcc on the
    runner input and compare with the golden integer model (see the module docstring)."""
    import nnforge
    from nnforge.codegen.lower import BackendError
    from nnforge.passes import QuantizeError
    from nnforge.sim.native import C_FLAGS, HARNESS, build as gcc_build, run_harness
    from nnforge.sim.progress import QUIET

    res = CResult(name, "failed")
    model, x = light_input(name)
    clock = _Clock()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            design = nnforge.compile(model, calibration=x, bits=bits, progress=clock)
    except QuantizeError as e:
        clock("refused")
        res.status, res.reason, res.seconds = "refused", str(e).splitlines()[0], clock.split()
        return res
    res.seconds.update(clock.split())
    res.macs = sum(r.get("macs", 0) for r in design.layers())
    x_int = design.quantize_input(x)
    t = time.monotonic()
    golden = design.predict_int(x_int).reshape(len(x_int), -1)
    res.seconds["golden"] = round(time.monotonic() - t, 2)
    out = Path(outdir)
    t = time.monotonic()
    try:
        design.write(out, targets=["c"])
    except BackendError as e:
        res.status, res.reason = "refused", str(e).splitlines()[0]
        return res
    res.seconds["write_c"] = round(time.monotonic() - t, 2)
    src = out / "c" / "nnforge_model.c"
    res.c_bytes = src.stat().st_size
    if not build:
        res.status = "written"
        return res
    del design, model  # gcc on a large model needs the memory more than we do
    gc.collect()
    try:
        bdir = out / "build" / "c"
        t = time.monotonic()
        exe = gcc_build("gcc", [src, HARNESS / "harness.c"], out / "c", bdir, C_FLAGS, QUIET, libs=("-lm",))
        res.seconds["gcc"] = round(time.monotonic() - t, 2)
        t = time.monotonic()
        got = run_harness(exe, x_int.reshape(len(x_int), -1), golden.shape[1], bdir)
        res.seconds["run_c"] = round(time.monotonic() - t, 2)
    except Exception as e:
        res.reason = f"{type(e).__name__}: {str(e)[:500]}"
        return res
    diff = np.flatnonzero(got != golden)
    if diff.size:
        res.reason = f"{diff.size} of {golden.size} output integers differ from golden (first at {diff[0]})"
    else:
        res.status = "passed"
    return res


def main_c(models: list[str], outdir, build: bool, as_json: bool) -> int:
    import tempfile

    results = []
    for name in models:
        with tempfile.TemporaryDirectory(dir=outdir) as tmp:
            r = check_light_c(name, Path(tmp) / name, build=build)
        results.append(r)
        if not as_json:
            steps = ", ".join(f"{k} {v:.1f}s" for k, v in r.seconds.items())
            size = f", C {r.c_bytes / 1e6:.1f} MB" if r.c_bytes else ""
            macs = f", {r.macs / 1e9:.2f} GMAC" if r.macs else ""
            print(f"light_{name}: {r.status}{' (' + r.reason + ')' if r.reason else ''}; {steps}{size}{macs}",
                  flush=True)
    if as_json:
        print(json.dumps([r.__dict__ for r in results], indent=1))
    return 1 if any(r.status == "failed" for r in results) else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="node,pytorch-converted,pytorch-operator,light")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--verbose", action="store_true", help="list passed cases too")
    ap.add_argument("--c", action="store_true", help="light models through the C backend (gcc == golden)")
    ap.add_argument("--models", default="", help="with --c: comma-separated light model names (default: all)")
    ap.add_argument("--no-build", action="store_true", help="with --c: write the C but do not build or run it")
    ap.add_argument("--outdir", default=None, help="with --c: folder for the temporary build folders")
    args = ap.parse_args(argv)
    if args.c:
        models = [m for m in args.models.split(",") if m] or light_names()
        return main_c(models, args.outdir, not args.no_build, args.json)
    outcomes = run_all([k for k in args.kinds.split(",") if k])
    per_op: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        for op in o.ops:
            per_op[op][o.status] += 1
    totals = Counter(o.status for o in outcomes)
    if args.json:
        print(json.dumps({"totals": {"cases": len(outcomes), **totals},
                          "per_op": {op: dict(c) for op, c in sorted(per_op.items())},
                          "not_passed": [o.__dict__ for o in outcomes if o.status != "passed"]}, indent=1))
    else:
        print(f"{'op':<22}{'cases':>7}{'passed':>8}{'refused':>9}{'failed':>8}")
        for op, c in sorted(per_op.items()):
            print(f"{op:<22}{sum(c.values()):>7}{c['passed']:>8}{c['refused']:>9}{c['failed']:>8}")
        print(f"{'all in-scope cases':<22}{len(outcomes):>7}{totals['passed']:>8}{totals['refused']:>9}{totals['failed']:>8}")
        for status in ("failed", "refused"):
            rows = [o for o in outcomes if o.status == status]
            if rows:
                print(f"\n{status}:")
                for o in rows:
                    print(f"  {o.name} [{o.kind}]: {o.reason}")
        if args.verbose:
            print("\npassed:\n" + "\n".join(f"  {o.name}" for o in outcomes if o.status == "passed"))
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
