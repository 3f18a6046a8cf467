"""Systolic engine (array + tiling sequencer): Amaranth-sim tests and cocotb regression."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.group_tiles import group_tile_ranges
from convaccel.hw.systolic_engine import SystolicEngine
from convaccel.hw.weight_loader import WeightLoader
from convaccel.sim.amaranth_frames import drive_streams
from convaccel.sim.engine_streams import (act_beats, golden_matmul, result_matrix, tile_counts,
                                          visited_tiles, weight_beats)


def run_problem(config, a, w, *, rng, idle=0.3, stall=0.3, max_cycles=200_000, problem=None,
                row_length=None, tile_ranges=None):
    """Stream one problem through the engine; return (out, counters dict, flags)."""
    dut = SystolicEngine(config)
    n, k = a.shape
    m = w.shape[1]
    acts = act_beats(config, a, row_length)
    weights = weight_beats(config, w, n, row_length, tile_ranges)
    results, report = [], {}

    async def testbench(ctx):
        nn, kk, mm = problem or (n, k, m)
        ctx.set(dut.n_vectors, nn)
        ctx.set(dut.row_length, nn if row_length is None else row_length)
        ctx.set(dut.k_terms, kk)
        ctx.set(dut.m_outputs, mm)
        if tile_ranges is not None:
            ctx.set(dut.chunks, len(tile_ranges))
            for chunk, (lo, hi) in enumerate(tile_ranges):
                ctx.set(dut.tile_map[chunk], {"lo": lo, "hi": hi})
        ctx.set(dut.job.start, 1)
        await ctx.tick()
        ctx.set(dut.job.start, 0)

        def take(beat):
            results.append([int(v) for v in beat.psum])
            if beat.last:
                report.setdefault("last_at", []).append(len(results) - 1)

        (sent_a, sent_w), _ = await drive_streams(
            ctx, dut, [(dut.act, acts), (dut.weights, weights)], dut.result, take,
            rng=rng, idle=idle, stall=stall, max_cycles=max_cycles)
        for _ in range(5):
            await ctx.tick()
        counters = ctx.get(dut.counters)
        report.update({name: int(getattr(counters, name)) for name in (
            "busy_cycles", "active_cycles", "issued_macs", "input_stall", "output_stall",
            "weight_stall", "drain_stall")})
        job = dut.job
        report.update(error=ctx.get(job.error), done=ctx.get(job.done), busy=ctx.get(job.busy),
                      acts_taken=sent_a, weights_taken=sent_w)

    async def decision_check(ctx):
        # The registered issue decision equals the rule on each cycle's facts.
        cycle = 0
        async for _, _, gate, check in ctx.tick().sample(dut.issue_gate, dut.issue_check):
            assert gate == check, f"issue decision {gate}, rule says {check} at cycle {cycle}"
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.add_testbench(decision_check, background=True)
    sim.run()
    return results, report


def sent_weight_beats(config, per_block, blocks):
    """The stream's beats: one block's, then per further block those the buffer lacks."""
    return per_block + (blocks - 1) * max(0, per_block - config.weight_buffer_depth)


def check_problem(config, n, k, m, seed, row_length=None, **kwargs):
    rng = np.random.default_rng(seed)
    a = rng.integers(config.act_min, config.act_max + 1, (n, k))
    w = rng.integers(config.weight_min, config.weight_max + 1, (k, m))
    beats, report = run_problem(config, a, w, rng=rng, row_length=row_length, **kwargs)
    out = result_matrix(config, beats, n, m, row_length)
    np.testing.assert_array_equal(out, golden_matmul(a, w))
    blocks, kts, mts = tile_counts(config, n, k, m, row_length)
    assert report["issued_macs"] == n * k * m
    assert report["active_cycles"] == n * kts * mts
    assert report["last_at"] == [len(beats) - 1]
    assert report["acts_taken"] == n * kts
    assert report["weights_taken"] == sent_weight_beats(config, kts * mts * config.array_rows,
                                                        blocks)
    assert not report["error"] and report["done"] and not report["busy"]
    return report


@pytest.mark.parametrize("rows, cols, block, n, k, m", [
    (2, 2, 8, 5, 3, 3),      # nothing is a multiple of the array
    (2, 2, 8, 20, 7, 5),     # several blocks, partial last block
    (1, 1, 4, 6, 3, 2),      # 1 x 1 array
    (1, 3, 4, 9, 2, 7),      # 1 x N
    (3, 1, 4, 9, 7, 2),      # N x 1
    (3, 2, 16, 17, 9, 4),    # exact tiles, block + 1 vectors
    (2, 3, 5, 1, 1, 1),      # a single MAC
])
@pytest.mark.parametrize("buffer", [32, 0, 5])   # holds most blocks, none, less than one block's
def test_random_problems_with_stalls_match_golden(rows, cols, block, n, k, m, buffer):
    config = PRESETS["tiny"].replace(array_rows=rows, array_cols=cols, array_block=block,
                                     max_out_channels=8, weight_buffer_depth=buffer)
    check_problem(config, n, k, m, seed=rows * 100 + cols * 10 + n)


def grouped_weights(rng, config, taps, c, m, groups):
    """A random ``W (K x M)`` for a grouped layer in the window generator's ``k`` order."""
    rows = config.array_rows
    chunks = -(-c // rows)
    w = np.zeros((taps, chunks * rows, m), dtype=np.int64)
    for o in range(m):
        group = o // (m // groups)
        first = group * (c // groups)
        w[:, first:first + c // groups, o] = rng.integers(
            config.weight_min, config.weight_max + 1, (taps, c // groups))
    return w.reshape(taps * chunks * rows, m)


@pytest.mark.parametrize("rows, cols, block, n, taps, c, m, groups", [
    (2, 2, 8, 10, 3, 4, 4, 4),      # depthwise, one chunk per output tile
    (2, 2, 8, 10, 2, 4, 8, 4),      # depthwise with channel multiplier 2
    (2, 3, 8, 9, 2, 6, 6, 3),       # groups straddle chunk and tile edges
    (3, 2, 4, 7, 1, 6, 4, 2),       # short blocks: visits closer than the pipeline
    (2, 2, 8, 12, 2, 8, 8, 2),      # groups of two chunks (two visits per tap)
    (4, 4, 8, 5, 2, 4, 4, 1),       # groups == 1 through the map: dense
])
def test_grouped_problems_skip_zero_tiles_and_match_golden(rows, cols, block, n, taps, c, m,
                                                          groups):
    config = PRESETS["tiny"].replace(array_rows=rows, array_cols=cols, array_block=block,
                                     max_in_channels=8, max_out_channels=8)
    rng = np.random.default_rng(rows * 1000 + c * 10 + groups)
    w = grouped_weights(rng, config, taps, c, m, groups)
    a = rng.integers(config.act_min, config.act_max + 1, (n, w.shape[0]))
    tile_ranges = group_tile_ranges(c, m, groups, rows, cols)
    beats, report = run_problem(config, a, w, rng=rng, tile_ranges=tile_ranges)
    np.testing.assert_array_equal(result_matrix(config, beats, n, m), golden_matmul(a, w))
    kts, mts = w.shape[0] // rows, -(-m // cols)
    steps = sum(1 for _ in visited_tiles(kts, mts, tile_ranges))
    assert report["active_cycles"] == n * steps
    assert report["weights_taken"] == sent_weight_beats(config, steps * rows, -(-n // block))
    assert report["last_at"] == [len(beats) - 1]
    assert not report["error"] and report["done"]
    if groups > 1 and len(tile_ranges) > 1:
        assert steps < kts * mts     # tiles really were skipped


@pytest.mark.parametrize("n, row_length", [(20, 6), (20, 3), (7, 2), (9, 9), (10, 4)])
def test_blocks_stop_at_output_row_ends(n, row_length):
    config = PRESETS["tiny"].replace(array_rows=2, array_cols=2, array_block=4,
                                     max_out_channels=8)
    check_problem(config, n, 5, 3, seed=n + row_length, row_length=row_length)


def test_zero_row_length_is_an_error():
    config = PRESETS["tiny"]
    a = np.ones((3, 3), dtype=np.int64)
    beats, report = run_problem(config, a, a, rng=np.random.default_rng(2), problem=(3, 3, 3),
                                row_length=0, max_cycles=50)
    assert report["error"] and not report["busy"] and beats == []


def test_extreme_operands_accumulate_exactly():
    config = PRESETS["tiny"]
    k = config.max_reduction
    a = np.full((3, k), config.act_min)
    w = np.full((k, 2), config.weight_min)
    w[:, 1] = config.weight_max
    beats, _ = run_problem(config, a, w, rng=np.random.default_rng(0))
    out = result_matrix(config, beats, 3, 2)
    assert out[0, 0] == k * 128 * 128 and out[0, 1] == -k * 128 * 127  # by hand
    np.testing.assert_array_equal(out, golden_matmul(a, w))


def test_zeros_give_zeros():
    config = PRESETS["tiny"]
    beats, _ = run_problem(config, np.zeros((4, 5), dtype=np.int64),
                           np.ones((5, 3), dtype=np.int64), rng=np.random.default_rng(1))
    assert not np.any(result_matrix(config, beats, 4, 3))


def first_tile_stall(config):
    """Cycles the first step waits for its tile: one per row, plus the weight
    buffer's FIFO stage when there is a buffer."""
    return config.array_rows + (1 if config.weight_buffer_depth else 0)


@pytest.mark.parametrize("buffer", [0, 72])
def test_compute_bound_problem_keeps_the_array_busy(buffer):
    config = PRESETS["tiny"].replace(array_rows=2, array_cols=2, array_block=16, max_out_channels=8,
                                     weight_buffer_depth=buffer)
    report = check_problem(config, 32, 8, 8, seed=3, idle=0.0, stall=0.0)
    ideal = 32 * 8 * 8 // 4   # 512 vector issues: 2 blocks x 4 kt x 4 mt x 16
    # No bubble between the 32 tiles: the only stalls are the first tile's
    # 2 load cycles (3 behind the buffer's FIFO); the fill is the array's
    # latency (rows + cols + 2 = 6) plus 5 register stages (issue, array
    # inputs, accumulate, FIFO write, output FIFO).
    assert report["weight_stall"] == first_tile_stall(config) == 2 + (buffer > 0), report
    assert report["input_stall"] == report["output_stall"] == report["drain_stall"] == 0
    assert report["busy_cycles"] == ideal + first_tile_stall(config) + 6 + 5, report


@pytest.mark.parametrize("block", [5, 6, 7, 8, 9])
def test_a_tile_revisit_waits_exactly_until_its_write_back(block):
    # 1x2 array: sums are written back rows + cols + 5 = 8 cycles after their
    # vector issues; a weight tile loads in 4 cycles, so these blocks never
    # wait for weights. One output tile and 4 reduction tiles: each of the 3
    # revisits brings vector n back `block` cycles after its last read, so it
    # must wait 8 - block cycles (by hand), and not one more.
    config = PRESETS["tiny"].replace(array_rows=1, array_cols=2, array_block=block,
                                     max_out_channels=8)
    writeback = SystolicEngine(config).latency + 2
    assert writeback == 8
    report = check_problem(config, block, 4, 2, seed=block, idle=0.0, stall=0.0)
    assert report["drain_stall"] == 3 * max(0, writeback - block), report
    # The first tile's load only.
    assert report["weight_stall"] == first_tile_stall(config), report


def test_single_vector_steps_do_not_wait_for_write_back():
    # One vector per step (a fully connected layer): each step waits for its
    # weight tile (2 rows + the loader's guard + 1: 4 cycles), so with 4
    # output tiles an accumulator comes back 16 cycles after its sums left,
    # after their write-back (engine latency 8 + 2 = 10 cycles); write-back is
    # counted in cycles, not issues.
    config = PRESETS["tiny"].replace(array_rows=2, array_cols=3, array_block=4,
                                     max_out_channels=12)
    assert SystolicEngine(config).latency + 2 < 4 * (2 + WeightLoader.GUARD + 1)
    report = check_problem(config, 1, 8, 12, seed=7, idle=0.0, stall=0.0)
    assert report["drain_stall"] == 0 and report["weight_stall"] > 0, report


@pytest.mark.parametrize("problem, what", [
    ((0, 3, 3), "n_vectors = 0"),
    ((3, 0, 3), "k_terms = 0"),
    ((3, 3, 0), "m_outputs = 0"),
    ((3, PRESETS["tiny"].max_reduction + 1, 3), "k_terms above max_reduction"),
    ((3, 3, PRESETS["tiny"].max_out_channels + 1), "m_outputs above max_out_channels"),
])
def test_bad_problem_sizes_set_error_and_stay_idle(problem, what):
    config = PRESETS["tiny"]
    a = np.ones((3, 3), dtype=np.int64)
    beats, report = run_problem(config, a, a, rng=np.random.default_rng(2), problem=problem,
                                max_cycles=50)
    assert report["error"] and report["done"] and not report["busy"], what
    assert beats == [] and report["acts_taken"] == 0 and report["weights_taken"] == 0


@pytest.mark.cocotb
def test_engine_cocotb_regression(run_bench, sim_config, sim_seed):
    from convaccel.sim.regression import REGRESSION_CONFIGS

    run_bench("systolic_engine", REGRESSION_CONFIGS[sim_config], sim_seed)


#: Degenerate array shapes, also run on the generated Verilog (one seed each).
EDGE_ARRAYS = {
    "1x1": PRESETS["tiny"].replace(array_rows=1, array_cols=1, array_block=4),
    "1x4": PRESETS["tiny"].replace(array_rows=1, array_cols=4, array_block=6),
    "4x1": PRESETS["tiny"].replace(array_rows=4, array_cols=1, array_block=5),
}


@pytest.mark.cocotb
@pytest.mark.parametrize("shape", list(EDGE_ARRAYS))
def test_engine_cocotb_edge_arrays(run_bench, shape):
    run_bench("systolic_engine", EDGE_ARRAYS[shape], 7)


@pytest.mark.cocotb
def test_array_benchmark_reports_consistent_figures():
    from convaccel.scripts.bench import array_problem, array_table, bench_array

    (figures,) = bench_array([2])
    n, k, m = array_problem(2)
    assert (figures["N"], figures["K"], figures["M"]) == (n, k, m)
    assert figures["counters"]["issued_macs"] == n * k * m
    assert figures["ideal_cycles"] == n * k * m / 4
    assert figures["cycles"] == figures["counters"]["busy_cycles"] >= figures["ideal_cycles"]
    assert figures["utilization"] == pytest.approx(figures["ideal_cycles"] / figures["cycles"])
    assert "| 2x2 |" in array_table([figures])


def test_no_combinational_path_from_result_ready_to_act_ready():
    """Back-pressure reaches the inputs only through registered FIFO/credit state."""
    config = PRESETS["tiny"]
    dut = SystolicEngine(config)
    n = 2 * dut.fifo_depth          # more results than the output FIFO holds
    a = np.ones((n, 2), dtype=np.int64)
    w = np.ones((2, 2), dtype=np.int64)
    acts, weights = act_beats(config, a), weight_beats(config, w, n, row_length=n)
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.n_vectors, n)
        ctx.set(dut.row_length, n)
        ctx.set(dut.k_terms, 2)
        ctx.set(dut.m_outputs, 2)
        ctx.set(dut.job.start, 1)
        await ctx.tick()
        ctx.set(dut.job.start, 0)
        ctx.set(dut.result.ready, 0)
        sent_a = sent_w = 0
        for _ in range(200):
            ctx.set(dut.act.valid, sent_a < len(acts))
            ctx.set(dut.act.payload, acts[min(sent_a, len(acts) - 1)])
            ctx.set(dut.weights.valid, sent_w < len(weights))
            ctx.set(dut.weights.payload, weights[min(sent_w, len(weights) - 1)])
            took_a = ctx.get(dut.act.valid) and ctx.get(dut.act.ready)
            took_w = ctx.get(dut.weights.valid) and ctx.get(dut.weights.ready)
            await ctx.tick()
            sent_a += bool(took_a)
            sent_w += bool(took_w)
        # Credit exhausted: the FIFO holds what was issued, inputs are held off.
        seen["blocked"] = ctx.get(dut.act.ready)
        ctx.set(dut.result.ready, 1)
        seen["same_cycle"] = ctx.get(dut.act.ready)
        await ctx.tick()
        seen["next_cycle"] = ctx.get(dut.act.ready)
        seen["sent"] = sent_a

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["sent"] < n, "the engine should have run out of output credit"
    assert seen == {"blocked": 0, "same_cycle": 0, "next_cycle": 1, "sent": seen["sent"]}
