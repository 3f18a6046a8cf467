"""Engine start: sizes sampled and checked at start, launch or error a cycle later, done at the last result."""

import pytest

from convaccel.hw import PRESETS
from convaccel.hw.engine_start import SIZE_NAMES, EngineStart
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]
CHUNK_MAX = -(-CONFIG.max_in_channels // CONFIG.array_rows)
GOOD = {"n_vectors": 10, "row_length": 4, "k_terms": 9, "m_outputs": 3, "chunks": 0}


async def start(ctx, dut, sizes):
    """Pulse start with these sizes; return (launch, error, done) of the next cycle."""
    for name in SIZE_NAMES:
        ctx.set(getattr(dut, name), sizes[name])
    ctx.set(dut.job.start, 1)
    await ctx.tick()
    ctx.set(dut.job.start, 0)
    for name in SIZE_NAMES:                      # sampled: later changes do not matter
        ctx.set(getattr(dut, name), 0)
    seen = (ctx.get(dut.launch), ctx.get(dut.job.busy))
    await ctx.tick()
    return seen + (ctx.get(dut.job.error), ctx.get(dut.job.done))


def test_good_sizes_launch_and_the_last_result_ends_the_job():
    async def testbench(ctx, dut):
        assert await start(ctx, dut, GOOD) == (1, 1, 0, 0)
        assert ctx.get(dut.running) and ctx.get(dut.job.busy)
        assert {name: ctx.get(getattr(dut.held, name)) for name in SIZE_NAMES} == GOOD
        assert ctx.get(dut.first_block) == min(GOOD["n_vectors"], GOOD["row_length"],
                                               CONFIG.array_block)
        # A start while busy is ignored.
        ctx.set(dut.job.start, 1)
        await ctx.tick()
        ctx.set(dut.job.start, 0)
        assert not ctx.get(dut.launch) and ctx.get(dut.running)
        for _ in range(3):
            await ctx.tick()
            assert ctx.get(dut.running) and not ctx.get(dut.job.done)
        ctx.set(dut.finished, 1)
        await ctx.tick()
        ctx.set(dut.finished, 0)
        assert not ctx.get(dut.running) and not ctx.get(dut.job.busy)
        assert ctx.get(dut.job.done) and not ctx.get(dut.job.error)

    run_testbench(EngineStart(CONFIG, CHUNK_MAX), testbench)


@pytest.mark.parametrize("name, value", [
    ("n_vectors", 0), ("n_vectors", CONFIG.max_vectors + 1), ("row_length", 0),
    ("k_terms", 0), ("k_terms", CONFIG.max_reduction + 1),
    ("m_outputs", 0), ("m_outputs", CONFIG.max_out_channels + 1), ("chunks", CHUNK_MAX + 1),
])
def test_a_bad_size_fails_the_job_without_launch(name, value):
    async def testbench(ctx, dut):
        launch, busy, error, done = await start(ctx, dut, {**GOOD, name: value})
        assert (launch, busy, error, done) == (0, 1, 1, 1)
        assert not ctx.get(dut.running) and not ctx.get(dut.job.busy)
        # The next good start runs.
        assert await start(ctx, dut, GOOD) == (1, 1, 0, 0)

    run_testbench(EngineStart(CONFIG, CHUNK_MAX), testbench)
