"""cocotb testbench of the systolic engine (``hw/systolic_engine.py``).

Random matrix problems - sizes that are not multiples of the array, extremes,
zeros, back-to-back problems of different shapes, bad sizes - stream through
with random gaps on both input streams and random back-pressure on the
result stream. Every result is compared with ``golden.conv2d`` (as a 1x1
convolution) and the counters with the problem's known MAC count.

``engine_benchmark`` runs only when ``CONVACCEL_BENCH_JSON`` names an output
file: it streams one problem (``CONVACCEL_BENCH_PROBLEM=N,K,M``) without
any stall and writes cycles, counters and simulation speed there.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from ...hw.systolic_engine import SystolicEngine, engine_counters_layout
from ..engine_streams import (act_beats, blocks as block_ranges, golden_matmul, result_matrix, tile_counts,
                              weight_beats)
from ..streams import (LayoutCodec, Scoreboard, StreamDriver, StreamMonitor,
                       bench_rng, start_clock_and_reset, wait_done)
from . import bench_config


class EngineBench:
    """Drivers, monitor, scoreboard and control of one ``systolic_engine`` top."""

    def __init__(self, dut, rng, *, idle_probability=0.3, stall_probability=0.3):
        self.dut = dut
        self.config = cfg = bench_config()
        engine = SystolicEngine(cfg)  # only for its port layouts
        self.rng = rng
        self.act = StreamDriver(dut, "act", LayoutCodec(engine.act.payload.shape()), rng=rng,
                                idle_probability=idle_probability)
        self.weights = StreamDriver(dut, "weights", LayoutCodec(engine.weights.payload.shape()),
                                    rng=rng, idle_probability=idle_probability)
        self.result = StreamMonitor(dut, "result", LayoutCodec(engine.result.payload.shape()),
                                    rng=rng, stall_probability=stall_probability)
        self.counter_codec = LayoutCodec(engine_counters_layout())
        self.scoreboard = Scoreboard("systolic_engine")
        dut.job__start.value = 0

    def counters(self) -> dict:
        return self.counter_codec.unpack(int(self.dut.counters.value))

    async def start(self, n, k, m, row_length=None):
        """Pulse start with a problem size (call right after a rising edge)."""
        dut = self.dut
        dut.n_vectors.value, dut.k_terms.value, dut.m_outputs.value = n, k, m
        dut.row_length.value = n if row_length is None else row_length
        dut.job__start.value = 1
        await RisingEdge(dut.clk)
        dut.job__start.value = 0

    async def wait_done(self, timeout_cycles: int):
        await wait_done(self.dut, timeout_cycles=timeout_cycles, what="engine")

    async def run(self, a, w, *, row_length=None, check=True):
        """Stream ``A @ W`` through the engine; check results and counters."""
        cfg = self.config
        n, k = a.shape
        m = w.shape[1]
        blocks, kts, mts = tile_counts(cfg, n, k, m, row_length)
        beats = n * mts
        budget = 40 * (n * kts * mts + blocks * kts * mts * (cfg.array_rows + cfg.array_cols)) + 2000
        self.result.beats = []
        await self.start(n, k, m, row_length)
        receiver = cocotb.start_soon(self.result.receive(beats, timeout_cycles=budget))
        weights = cocotb.start_soon(self.weights.send(weight_beats(cfg, w, n, row_length),
                                                      timeout_cycles=budget))
        await self.act.send(act_beats(cfg, a, row_length), timeout_cycles=budget)
        await weights
        received = await receiver
        await self.wait_done(budget)
        out = result_matrix(cfg, [beat["psum"] for beat in received], n, m, row_length)
        lasts = [beat["last"] for beat in received]
        if check:
            expected = golden_matmul(a, w)
            self.scoreboard.compare([{"row": i, "sums": row} for i, row in enumerate(expected.tolist())],
                                    [{"row": i, "sums": row} for i, row in enumerate(out.tolist())])
            assert lasts == [0] * (beats - 1) + [1], "last must mark exactly the final beat"
            groups = [mt for start, stop in block_ranges(cfg, n, row_length) for mt in range(mts)
                      for _ in range(start, stop)]
            assert [beat["group"] for beat in received] == groups, "wrong output-tile index"
            counters = self.counters()
            assert counters["issued_macs"] == n * k * m, counters
            assert counters["active_cycles"] == n * kts * mts, counters
            assert int(self.dut.job__error.value) == 0
        return out


def random_problem(cfg, rng, n, k, m):
    a = rng.integers(cfg.act_min, cfg.act_max + 1, (n, k))
    w = rng.integers(cfg.weight_min, cfg.weight_max + 1, (k, m))
    return a, w


@cocotb.test()
async def engine_random_problems_match_golden(dut):
    """Random sizes (mostly not multiples of the array) with stalls on every stream."""
    tb = EngineBench(dut, bench_rng(1))
    cfg = tb.config
    rng = tb.rng
    await start_clock_and_reset(dut)
    rows, cols, block = cfg.array_rows, cfg.array_cols, cfg.array_block
    sizes = [
        (1, 1, 1),
        (block + 1, 2 * rows + 1, cols + 1),
        (3, rows, cols),
        (2 * block, 3 * rows - 1, min(cfg.max_out_channels, 2 * cols + 1)),
    ]
    for _ in range(3):
        sizes.append((int(rng.integers(1, 2 * block + 2)),
                      int(rng.integers(1, min(cfg.max_reduction, 4 * rows) + 1)),
                      int(rng.integers(1, cfg.max_out_channels + 1))))
    for n, k, m in sizes:
        m = min(m, cfg.max_out_channels)
        k = min(k, cfg.max_reduction)
        await tb.run(*random_problem(cfg, rng, n, k, m))
        dut._log.info("N=%d K=%d M=%d matches golden; counters %s", n, k, m, tb.counters())


@cocotb.test()
async def engine_extreme_operands_and_zeros(dut):
    """-128 x -128 over the longest reduction, and all-zero activations."""
    tb = EngineBench(dut, bench_rng(2))
    cfg = tb.config
    await start_clock_and_reset(dut)
    k = cfg.max_reduction
    a = np.full((3, k), cfg.act_min)
    w = np.full((k, 2), cfg.weight_min)
    w[:, 1] = cfg.weight_max
    out = await tb.run(a, w)
    assert out[0, 0] == k * cfg.act_min * cfg.weight_min  # by hand: the largest sum
    out = await tb.run(np.zeros((5, 7), dtype=np.int64),
                       tb.rng.integers(cfg.weight_min, cfg.weight_max + 1, (7, 3)))
    assert not out.any()


@cocotb.test()
async def engine_bad_sizes_set_error_then_next_problem_runs(dut):
    """Each bad size: error + done, nothing consumed; a good problem follows."""
    tb = EngineBench(dut, bench_rng(3))
    cfg = tb.config
    await start_clock_and_reset(dut)
    await tb.start(3, 3, 3, row_length=0)
    await RisingEdge(dut.clk)        # the size check is registered: a cycle on
    await ReadOnly()
    assert int(dut.job__error.value) == 1, "no error for row_length 0"
    await RisingEdge(dut.clk)
    bad_sizes = [(0, 3, 3), (3, 0, 3), (3, 3, 0),
                 (3, cfg.max_reduction + 1, 3), (3, 3, cfg.max_out_channels + 1)]
    for n, k, m in bad_sizes:
        if k >= 1 << len(dut.k_terms) or m >= 1 << len(dut.m_outputs):
            continue  # not encodable on the port: cannot be requested at all
        await tb.start(n, k, m)
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert int(dut.job__error.value) == 1, f"no error for N={n} K={k} M={m}"
        assert int(dut.job__done.value) == 1 and int(dut.job__busy.value) == 0
        assert int(dut.act__ready.value) == 0 and int(dut.weights__ready.value) == 0
        await RisingEdge(dut.clk)
    await tb.run(*random_problem(cfg, tb.rng, 5, 3, 2))


@cocotb.test()
async def engine_back_to_back_problems(dut):
    """Problems of different shapes one after another on the same engine."""
    tb = EngineBench(dut, bench_rng(4), idle_probability=0.1, stall_probability=0.5)
    cfg = tb.config
    await start_clock_and_reset(dut)
    for n, k, m, row in [(4, 1, 1, None), (cfg.array_block, cfg.array_rows + 2, 2, None),
                         (2, min(cfg.max_reduction, 5 * cfg.array_rows), cfg.max_out_channels, 1),
                         (3 * cfg.array_block + 5, 3, 2, cfg.array_block + 3)]:
        await tb.run(*random_problem(cfg, tb.rng, n, k, m), row_length=row)


@cocotb.test()
async def engine_benchmark(dut):
    """Measure one stall-free problem (only with CONVACCEL_BENCH_JSON set)."""
    target = os.environ.get("CONVACCEL_BENCH_JSON")
    if not target:
        dut._log.info("CONVACCEL_BENCH_JSON not set: benchmark skipped")
        return
    n, k, m = (int(v) for v in os.environ["CONVACCEL_BENCH_PROBLEM"].split(","))
    tb = EngineBench(dut, bench_rng(5), idle_probability=0.0, stall_probability=0.0)
    cfg = tb.config
    await start_clock_and_reset(dut)
    a, w = random_problem(cfg, tb.rng, n, k, m)
    wall = time.monotonic()
    await tb.run(a, w)
    wall = time.monotonic() - wall
    counters = tb.counters()
    pes = cfg.array_rows * cfg.array_cols
    ideal = n * k * m / pes
    figures = {
        "array": f"{cfg.array_rows}x{cfg.array_cols}", "rows": cfg.array_rows,
        "cols": cfg.array_cols, "block": cfg.array_block, "N": n, "K": k, "M": m,
        "macs": n * k * m, "cycles": counters["busy_cycles"], "ideal_cycles": ideal,
        "utilization": ideal / counters["busy_cycles"], "latency": cfg.array_rows + cfg.array_cols - 1,
        "counters": counters, "wall_seconds": wall,
        "sim_cycles_per_second": counters["busy_cycles"] / wall,
    }
    with open(target, "w") as handle:
        json.dump(figures, handle, indent=2)
    dut._log.info("benchmark: %s", figures)
