"""Run the ONNX backend test suite (shipped inside the ``onnx`` package) on nnforge's
float interpreter, for every case whose ops are all ones nnforge supports, and print the
pass count per op with every case that did not pass and why.

    python scripts/onnx_conformance.py [--kinds node,pytorch-converted,pytorch-operator]
                                       [--json] [--verbose]

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


def in_scope_cases(kinds):
    from onnx.backend.test.loader import load_model_tests

    from nnforge.frontend import SUPPORTED_OPS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in kinds:
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
    ap.add_argument("--kinds", default="node,pytorch-converted,pytorch-operator")
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
