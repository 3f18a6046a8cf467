"""Slice output: the read pipeline and credit-counted FIFO, with a memory modelled in Python."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.banked_memory import BankedMemory
from convaccel.hw.slice_output import SliceOutput
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]          # 2 lanes of 8 bits
LATENCIES = [BankedMemory.READ_LATENCY, BankedMemory.READ_LATENCY + 1]


def random_slices(rng, count):
    """(word, pad, last_group) per slice; the last of them is the frame's last."""
    return [([int(v) for v in rng.integers(-128, 128, CONFIG.array_rows)],
             int(rng.random() < 0.3), int(rng.random() < 0.5)) for _ in range(count)]


def expected_beat(word, pad, last_group, zero_point, unused_lanes):
    """A padded slice is the zero point; the last group's unused lanes are 0, padded or not."""
    return [0 if last_group and unused_lanes >> lane & 1 else zero_point if pad else word[lane]
            for lane in range(CONFIG.array_rows)]


def simulate(testbench, read_latency=BankedMemory.READ_LATENCY):
    run_testbench(SliceOutput(CONFIG, read_latency), testbench)


async def stream_slices(ctx, dut, slices, rng, *, issue_rate, ready_rate, max_cycles=2000):
    """Issue ``slices`` whenever allowed, acting as a memory of the DUT's read latency;
    returns the beats taken from ``o`` and the most slices ever in flight."""
    pending = [None] * (dut.pipeline - 1)     # words addressed in the last read-latency cycles
    issued, taken, in_flight, most = 0, [], 0, 0
    for _ in range(max_cycles):
        want = issued < len(slices) and rng.random() < issue_rate
        issue = want and ctx.get(dut.space)
        ctx.set(dut.issue, issue)
        if issue:
            word, pad, last_group = slices[issued]
            ctx.set(dut.tag.pad, pad)
            ctx.set(dut.tag.last_group, last_group)
            ctx.set(dut.tag.last, int(issued == len(slices) - 1))
        # Padded slices read a stale word: it must not show.
        ctx.set(dut.read_data, pending[0] if pending[0] is not None else [99, -99])
        ready = rng.random() < ready_rate
        ctx.set(dut.o.ready, ready)
        if ctx.get(dut.o.valid) and ready:
            payload = ctx.get(dut.o.payload)
            taken.append((list(payload.data), payload.last))
            in_flight -= 1
        if issue:
            in_flight += 1
            most = max(most, in_flight)
            issued += 1
        pending = pending[1:] + [slices[issued - 1][0] if issue else None]
        await ctx.tick()
        if len(taken) == len(slices):
            ctx.set(dut.issue, 0)
            ctx.set(dut.o.ready, 0)
            return taken, most
    raise AssertionError(f"{len(taken)} of {len(slices)} slices out")


@pytest.mark.parametrize("read_latency", LATENCIES)
def test_slices_come_out_in_order_with_the_zero_point_in_padded_lanes(read_latency):
    rng = np.random.default_rng(11)
    slices = random_slices(rng, 300)
    zero_point, unused_lanes = -37, 0b10

    async def testbench(ctx, dut):
        ctx.set(dut.zero_point, zero_point)
        ctx.set(dut.unused_lanes, unused_lanes)
        assert ctx.get(dut.empty) and ctx.get(dut.space)
        taken, most = await stream_slices(ctx, dut, slices, rng, issue_rate=0.9,
                                          ready_rate=0.6)
        want = [(expected_beat(word, pad, last_group, zero_point, unused_lanes),
                 int(index == len(slices) - 1))
                for index, (word, pad, last_group) in enumerate(slices)]
        assert taken == want
        # Never more slices issued than FIFO places, and all of them in use at times.
        assert most == dut.fifo_depth
        await ctx.tick()
        assert ctx.get(dut.empty) and not ctx.get(dut.o.valid)

    simulate(testbench, read_latency)


def test_a_steady_stream_issues_every_cycle():
    """With o always ready the credits never run out: one slice per cycle."""
    rng = np.random.default_rng(12)
    slices = random_slices(rng, 50)

    async def testbench(ctx, dut):
        ctx.set(dut.o.ready, 1)
        for _ in range(len(slices) + 10):
            assert ctx.get(dut.space)
            ctx.set(dut.issue, 1)
            await ctx.tick()
        ctx.set(dut.issue, 0)

    simulate(testbench)


@pytest.mark.parametrize("read_latency", LATENCIES)
def test_without_takers_space_runs_out_after_the_fifo_depth(read_latency):
    async def testbench(ctx, dut):
        ctx.set(dut.o.ready, 0)
        for _ in range(dut.fifo_depth):
            assert ctx.get(dut.space)
            ctx.set(dut.issue, 1)
            await ctx.tick()
        ctx.set(dut.issue, 0)
        for _ in range(10):
            assert not ctx.get(dut.space) and not ctx.get(dut.empty)
            await ctx.tick()
        assert ctx.get(dut.o.valid)

    simulate(testbench, read_latency)


def test_clear_drops_the_slices_in_flight():
    rng = np.random.default_rng(13)

    async def testbench(ctx, dut):
        ctx.set(dut.o.ready, 0)
        for _ in range(4):                       # some in the FIFO, some in the pipeline
            ctx.set(dut.issue, 1)
            await ctx.tick()
        ctx.set(dut.issue, 1)                    # an issue in the clearing cycle is dropped too
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.issue, 0)
        ctx.set(dut.clear, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(2 * dut.pipeline):
            assert not ctx.get(dut.o.valid)
            assert ctx.get(dut.empty) and ctx.get(dut.space)
            await ctx.tick()
        # It works as before afterwards.
        slices = random_slices(rng, 20)
        taken, _ = await stream_slices(ctx, dut, slices, rng, issue_rate=1.0, ready_rate=0.8)
        assert [beat for beat, _ in taken] == [
            expected_beat(word, pad, last_group, 0, 0) for word, pad, last_group in slices]

    simulate(testbench)
