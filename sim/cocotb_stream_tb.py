"""cocotb test module: stream N input vectors through ``nnforge_top`` back to back.

Run by :mod:`nnforge.sim.verilog` inside the simulator. It reads its job from the JSON
file named by ``NNFORGE_TB_JOB``::

    {"inputs": "in.npy",            # (N, n_in) uint64 bit patterns of in_data
     "outputs": "out.npy",          # written: (N, n_out) uint64 bit patterns of out_data
     "result": "result.json",       # written: status and cycle measurements
     "progress": "progress.txt",    # overwritten with the number of finished vectors
     "n_in": 64, "n_out": 10, "max_cycles": 100000, "reset_cycles": 4,
     "stall": 0.0, "seed": 1,       # optional: probability of holding back a beat
     "trace": ["s3", ...],          # optional: internal streams of the top whose beats
                                    # are recorded (into result.json "trace")
     "ports": {"clk": "aclk", ...}} # optional: other port names (an AXI4-Stream wrapper),
                                    # "rst_active": 0 for an active-low reset


One coroutine does everything, once per clock: at the falling edge (all register
outputs settled, inputs to be sampled at the next rising edge) it records the output
beat that the next rising edge takes and presents the next input beat. ``in_ready`` and
``out_valid`` depend only on registers, so values read at the falling edge are exactly
what the rising edge sees. While nothing can happen (no input accepted, no output
valid) it sleeps until ``in_ready`` or ``out_valid`` rises instead of waking every cycle.
Cycle numbers come from the simulation time, so sleeping does not lose count.

With ``stall > 0`` the testbench withholds ``in_valid`` and drops ``out_ready`` at
random (that probability per cycle) to check the design under backpressure; it then
wakes every cycle, and its timing figures are not the design's steady state.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

PERIOD_NS = 10


def _job() -> tuple[dict, Path]:
    path = Path(os.environ["NNFORGE_TB_JOB"])
    return json.loads(path.read_text()), path.parent


@cocotb.test()
async def stream_vectors(dut) -> None:
    job, base = _job()
    x = np.load(base / job["inputs"]).astype(np.uint64)
    n_vec, n_in, n_out = x.shape[0], int(job["n_in"]), int(job["n_out"])
    assert x.shape[1] == n_in, "input vector length does not match the design"
    flat_in = [int(v) for v in x.reshape(-1)]
    total_in, total_out = len(flat_in), n_vec * n_out
    out_vals = [0] * total_out
    out_last = [0] * total_out
    in_cycles: list[int] = []  # cycle of the first beat of each vector
    last_cycles: list[int] = []  # cycle of the last output beat of each vector
    progress_file = base / job["progress"]
    every = max(1, n_vec // 10)
    max_cycles = int(job["max_cycles"])
    stall = float(job.get("stall", 0.0))
    rng = random.Random(int(job.get("seed", 1)))

    traced = [(s, getattr(dut, f"{s}_valid"), getattr(dut, f"{s}_ready"), getattr(dut, f"{s}_data"))
              for s in job.get("trace", [])]
    beats: dict[str, list[int]] = {s: [] for s, *_ in traced}
    names = job.get("ports") or {}
    clk, in_valid, in_ready, in_data, in_last, out_valid, out_ready, out_data, out_lastsig = _ports(dut, names)
    await _reset(clk, in_valid, in_data, out_ready, _port(dut, names, "rst"), int(names.get("rst_active", 1)),
                 int(job.get("reset_cycles", 4)))
    fall = FallingEdge(clk)
    await fall
    t0 = get_sim_time("ns")
    wall0 = time.monotonic()

    def cycle_now() -> int:
        return int(round((get_sim_time("ns") - t0) / PERIOD_NS))

    n_fed = n_got = 0
    status = "ok"
    cyc = 0
    while n_got < total_out:
        cyc = cycle_now()
        if cyc > max_cycles:
            status = "timeout"
            break
        busy = bool(traced)  # internal beats happen while the ports are quiet: wake every cycle
        for s, v, r, d in traced:  # a beat the next rising edge takes
            if v.value and r.value:
                beats[s].append(int(d.value))
        take = True
        if stall:
            take = rng.random() >= stall
            out_ready.value = int(take)
            busy = True
        # output beat taken at the next rising edge (when out_ready is high)
        if take and out_valid.value:
            out_vals[n_got] = int(out_data.value)
            out_last[n_got] = int(out_lastsig.value)
            n_got += 1
            busy = True
            if n_got % n_out == 0:
                last_cycles.append(cyc)
                done = n_got // n_out
                if done % every == 0 or done == n_vec:
                    progress_file.write_text(str(done))
        # input beat: present element n_fed; it is taken at the next edge iff in_ready
        if n_fed < total_in:
            if in_ready.value and (not stall or rng.random() >= stall):
                in_data.value = flat_in[n_fed]
                in_valid.value = 1
                if in_last is not None:
                    in_last.value = int(n_fed % n_in == n_in - 1)
                if n_fed % n_in == 0:
                    in_cycles.append(cyc)
                n_fed += 1
                busy = True
            else:
                in_valid.value = 0
        elif n_fed == total_in:
            in_valid.value = 0
            n_fed += 1  # drive in_valid low once
            busy = True
        if busy:
            await fall
        else:
            # nothing changes until a ready or valid rises (or the cycle budget runs out)
            budget = max(1, max_cycles - cyc + 1) * PERIOD_NS
            await First(RisingEdge(in_ready), RisingEdge(out_valid), Timer(budget, unit="ns"))
            await fall

    wall = time.monotonic() - wall0
    np.save(base / job["outputs"], np.array(out_vals, dtype=np.uint64).reshape(n_vec, n_out))
    _write_result(base / job["result"], status=status, vectors_in=min(n_fed, total_in) // n_in,
                  vectors_out=n_got // n_out, elements_out=n_got, cycles=cyc, first_in_cycles=in_cycles,
                  last_out_cycles=last_cycles, wall_seconds=wall, trace=beats,
                  out_last_ok=all(bool(out_last[i]) == ((i % n_out) == n_out - 1) for i in range(n_got)))
    assert status == "ok", f"simulation did not finish within {max_cycles} cycles"


def _write_result(path: Path, **result) -> None:
    """``result.json``: status and cycle measurements, read by :mod:`nnforge.sim.verilog`."""
    path.write_text(json.dumps(result))


def _port(dut, names: dict, name: str):
    return getattr(dut, names.get(name, name))


def _ports(dut, names: dict) -> tuple:
    """The stream ports by their names in the job (``in_last`` only for a wrapper that has
    it, driven low as an AXI master does; None otherwise)."""
    in_last = _port(dut, names, "in_last") if "in_last" in names else None
    if in_last is not None:
        in_last.value = 0
    return (*(_port(dut, names, n) for n in ("clk", "in_valid", "in_ready", "in_data")), in_last,
            *(_port(dut, names, n) for n in ("out_valid", "out_ready", "out_data", "out_last")))


async def _reset(clk, in_valid, in_data, out_ready, rst, rst_on: int, cycles: int) -> None:
    """Start the clock and hold reset for ``cycles`` falling edges, the inputs idle."""
    cocotb.start_soon(Clock(clk, PERIOD_NS, unit="ns").start())
    in_valid.value = 0
    in_data.value = 0
    out_ready.value = 0
    rst.value = rst_on
    for _ in range(cycles):
        await FallingEdge(clk)
    rst.value = 1 - rst_on
    out_ready.value = 1
