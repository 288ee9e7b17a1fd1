"""A design-space sweep's wall time on 1..N local Dask workers, against the limit (N
times the one-worker rate), and the front it finds.

    python3 benchmarks/explore_sweep.py [--model digits_cnn|digits_resnet] [--workers 1,2]
        [--bits 3,4,5,6,8] [--fit ecp5-25k,ecp5-85k,xc7z020]

Each run starts from an empty folder (no cache), so every configuration is measured; the
records of every run must be equal (the sweep is deterministic whoever runs it).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from nnforge.data import load_npz
from nnforge.explore import explore
from nnforge.explore.results import summary_lines
from nnforge.sim.progress import Progress

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits_cnn", choices=("digits_cnn", "digits_resnet", "digits_mlp"))
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--bits", default="3,4,5,6,8")
    ap.add_argument("--per-channel", default="on,off")
    ap.add_argument("--fit", default="ecp5-25k,ecp5-85k,xc7z020")
    args = ap.parse_args()
    ex = EXAMPLES / args.model
    x_cal, _ = load_npz(ex / "calibration.npz")
    val = load_npz(ex / "test.npz")
    runs = {}
    for n in [int(w) for w in args.workers.split(",")]:
        out = Path(tempfile.mkdtemp(prefix="nnforge-explore-bench-"))
        try:
            t0 = time.monotonic()
            doc = explore(ex / "model.onnx", x_cal, val, out / "sweep", bits=args.bits.split(","),
                          per_channel=[p == "on" for p in args.per_channel.split(",")], fit=args.fit.split(","),
                          workers=n, progress=Progress(quiet=True))
            runs[n] = (time.monotonic() - t0, doc["configurations"])
        finally:
            shutil.rmtree(out, ignore_errors=True)
    first = next(iter(runs.values()))[1]
    print("\n".join(summary_lines(first)))
    base_n, (base_s, _) = next(iter(runs.items()))
    for n, (secs, recs) in runs.items():
        assert recs == first, "the records differ between runs"
        speedup = base_s / secs
        print(f"{n} worker(s): {len(recs)} configurations in {secs:.1f} s ({len(recs) / secs:.2f} per s), "
              f"speedup {speedup:.2f} over {base_n}, {speedup / (n / base_n):.2f} of the limit ({n / base_n:g}x)")


if __name__ == "__main__":
    main()
