"""The README's figures for models quantized by onnxruntime: on the test split of each
bundled example, how many output integers golden, the exact reference
(tests/qdq_reference.py) and onnxruntime share, with 8-bit and with 7-bit weights.

    python benchmarks/qdq_agreement.py
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import nnforge  # noqa: E402
import qdq_reference  # noqa: E402
from conftest import ROOT  # noqa: E402
from test_qdq import _golden, _logits, _ort_integers, _qdq  # noqa: E402

CASES = [("digits_cnn", "QDQ", False), ("digits_cnn", "QDQ", True), ("digits_cnn", "QOperator", False),
         ("digits_mlp", "QDQ", False), ("digits_mlp", "QOperator", False),
         ("digits_resnet", "QDQ", False), ("digits_resnet", "QOperator", False)]


def _share(a, b) -> str:
    d = np.abs(a - b)
    return f"{(d == 0).mean():7.2%} (worst {int(d.max())})"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    print(f"{'model':38s} {'golden = reference':>20s} {'onnxruntime = reference':>24s} {'golden = onnxruntime':>21s}")
    for example, fmt, per_channel in CASES:
        x = np.load(ROOT / "examples" / example / "test.npz")["x"]
        for narrow in (False, True):
            model = _qdq(tmp, example, per_channel, fmt=fmt, reduce_range=narrow)
            out = _logits(model)
            gold = _golden(nnforge.compile(model), x)
            ref, ort = qdq_reference.integers(model, out, x), _ort_integers(model, out, x)
            name = f"{example} {fmt} {'per-channel' if per_channel else 'per-tensor'} {7 if narrow else 8}-bit"
            print(f"{name:38s} {_share(gold, ref):>20s} {_share(ort, ref):>24s} {_share(gold, ort):>21s}", flush=True)
    print(f"({len(x)} samples x 10 logits per row)")


if __name__ == "__main__":
    main()
