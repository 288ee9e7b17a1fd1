from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digits_mlp"


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def digits_data():
    cal = np.load(EXAMPLE / "calibration.npz")["x"]
    test = np.load(EXAMPLE / "test.npz")
    return cal, test["x"], test["y"]


@pytest.fixture(scope="session")
def digits_design(digits_data):
    import nnforge

    cal, _, _ = digits_data
    return nnforge.compile(EXAMPLE / "model.onnx", calibration=cal, bits=8)


def extremes(design, n, seed):
    """Random integer inputs over the whole input type, with both corners included."""
    t = design.input_type
    rng = np.random.default_rng(seed)
    x = rng.integers(t.lo, t.hi + 1, size=(n, *design.input_shape))
    x[0], x[1] = t.lo, t.hi
    return x


@pytest.fixture(scope="session", autouse=True)
def _shared_verilator_runtime(tmp_path_factory):
    """Compile Verilator's runtime library once per test session, not once per test's
    build directory (sim/verilog.py reads NNFORGE_VERILATOR_CACHE)."""
    import os
    old = {k: os.environ.get(k) for k in ("NNFORGE_VERILATOR_CACHE", "NNFORGE_CACHE")}
    os.environ["NNFORGE_VERILATOR_CACHE"] = str(tmp_path_factory.mktemp("verilator_runtime"))
    # the private build cache of verify / trace, shared by the session's workers (entries
    # are keyed by content and put in place atomically), not the user's ~/.cache
    base = tmp_path_factory.getbasetemp()
    os.environ["NNFORGE_CACHE"] = str((base.parent if base.name.startswith("popen-") else base) / "nnforge-cache")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class _VerilogPorts:
    """What the Verilator runner needs of a design: sizes and types of its two streams."""

    def __init__(self, design, info):
        self.n_in, self.n_out = info["n_in"], info["n_out"]
        self.in_t, self.out_t = design.input_type, design.output_type


def verilog_exact(design, tmp_path, x_int, backpressure=0.0, parallelism="balanced"):
    """Write ``design``'s engine-graph Verilog into ``tmp_path/v`` (lint-clean), simulate
    ``x_int`` in Verilator/cocotb and require every output integer of every sample to equal
    the golden model's. Returns (verilog_info, SimRun)."""
    from nnforge.codegen.verilog_cnn import write_cnn
    from nnforge.sim import verilog as sim_verilog
    from nnforge.sim.progress import QUIET

    out = tmp_path / "v"
    info = write_cnn(design.qgraph, out, parallelism=parallelism)
    sim_verilog.lint(out)
    n = len(x_int)
    gold = design.predict_int(x_int).reshape(n, -1)
    res = sim_verilog.run(_VerilogPorts(design, info), out, tmp_path / "b", x_int.reshape(n, -1), QUIET, gold,
                          backpressure=backpressure)
    assert res.y.shape == gold.shape
    assert res.extra["mismatches"] == 0 and np.array_equal(res.y, gold)
    return info, res


def train_classifier(model, x, y, steps: int, lr: float, batch: int | None = None):
    """Adam on cross-entropy for the tests' small torch models: ``steps`` full-batch steps,
    or with ``batch`` ``steps`` epochs of shuffled mini-batches; returns the model in eval mode."""
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        for idx in (torch.randperm(len(x)).split(batch) if batch else [slice(None)]):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def verify_trace_json(out, data, capsys, limit: int = 20) -> tuple[int, dict]:
    """``nnforge verify OUT --data DATA --limit N --trace --json``: its exit status and the
    JSON it printed."""
    import json

    from nnforge import cli

    capsys.readouterr()
    rc = cli.main(["verify", str(out), "--data", str(data), "--limit", str(limit), "--trace", "--json", "-q"])
    return rc, json.loads(capsys.readouterr().out)


def negate_first_row(src, array: str) -> None:
    """Corrupt a generated source on purpose: negate the first printed row of the constant
    array ``array`` (what a verify run must then catch)."""
    import re

    text = src.read_text()
    m = re.search(rf"{array}\[\d+\] = \{{\n    ([^\n]*),\n", text)
    row = ", ".join(str(-int(v)) for v in m.group(1).split(", "))
    src.write_text(text[:m.start(1)] + row + text[m.end(1):])


def run_c_float_wrapper(design, tmp_path, x):
    """The generated C's ``nnforge_run_float`` on float samples ``x`` (gcc), per sample."""
    import subprocess
    from nnforge.sim.tools import find_tool

    out = design.write(tmp_path / "out", targets=["c"])
    main = tmp_path / "main.c"
    main.write_text("""
#include <stdio.h>
#include "nnforge_model.h"
int main(void) {
    float in[NNFORGE_IN_SIZE], out[NNFORGE_OUT_SIZE];
    int i;
    while (fread(in, sizeof(float), NNFORGE_IN_SIZE, stdin) == NNFORGE_IN_SIZE) {
        nnforge_run_float(in, out);
        for (i = 0; i < NNFORGE_OUT_SIZE; i++) printf("%.9g\\n", out[i]);
    }
    return 0;
}
""")
    exe = tmp_path / "wrapper"
    subprocess.run([find_tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(out / "c"),
                    str(out / "c" / "nnforge_model.c"), str(main), "-o", str(exe), "-lm"], check=True)
    res = subprocess.run([str(exe)], input=np.asarray(x).astype("<f4").tobytes(), capture_output=True, check=True)
    return np.array(res.stdout.split(), dtype=np.float64).reshape(len(x), -1)


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def bench_module(name: str):
    """``benchmarks/<name>.py`` as a module (the folder is not a package), loaded once."""
    import importlib.util
    import sys

    key = f"nnforge_bench_test_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BENCHMARKS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
    return sys.modules[key]



def ecp5_branch_exact(design, out: Path, dst: Path, define: str, model: tuple[str, str], x_int, tmp_path) -> dict:
    """The Verilog in ``out`` as ``nnforge synth`` reads it for ECP5 (``define`` set in every
    source), copied to ``dst`` with the block's simulation model ``model`` (file name,
    text): both simulated in Verilator, every output integer equal to golden, the same
    latency and cycles per inference. Returns the sources' texts by file name."""
    import json

    from nnforge.sim import verilog as sim_verilog
    from nnforge.sim.progress import QUIET

    dst.mkdir()
    info = json.loads((out / "verilog_info.json").read_text())
    texts = {f: (out / f).read_text() for f in info["files"]}
    for f, text in texts.items():
        (dst / f).write_text(f"`define {define}\n" + text if f.endswith(".v") else text)
    (dst / model[0]).write_text(model[1])
    info["files"].insert(0, model[0])
    (dst / "verilog_info.json").write_text(json.dumps(info))
    hw = design.lowered("verilog")
    runs = [sim_verilog.run(hw, d, tmp_path / f"b{k}", x_int, QUIET, expected=design.predict_int(x_int))
            for k, d in enumerate((out, dst))]
    assert [r.extra["mismatches"] for r in runs] == [0, 0]
    assert runs[0].latency_cycles == runs[1].latency_cycles
    assert runs[0].cycles_per_inference == runs[1].cycles_per_inference
    return texts
