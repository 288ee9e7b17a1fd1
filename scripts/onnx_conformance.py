"""Run the ONNX backend test suite (shipped inside the ``onnx`` package) on nnforge's
float interpreter, for every case whose ops are all ones nnforge supports, and print the
pass count per op with every case that did not pass and why.

    python scripts/onnx_conformance.py [--kinds node,pytorch-converted,pytorch-operator,light]
                                       [--json] [--verbose]

``light`` is the real-model graphs shipped in the package (resnet50, squeezenet, ...,
with constant weights): each runs on the input the ONNX test runner uses for them
(``arange(n) / n``) and is compared with its stored output.

A case is *passed* when every output of every data set matches within the case's own
tolerance, *refused* when the importer declines it with a reason (something nnforge
does not support, e.g. a Softmax over the batch axis), and *failed* otherwise (a wrong
result or an unexpected error). The exit status is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass

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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="node,pytorch-converted,pytorch-operator,light")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--verbose", action="store_true", help="list passed cases too")
    args = ap.parse_args(argv)
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
