"""Skid buffer: order, no loss, full rate, and registered outputs and ready."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw.skid_buffer import SkidBuffer
from convaccel.sim.amaranth_frames import pass_through as run


@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_every_beat_arrives_once_in_order(idle, stall):
    rng = np.random.default_rng(int(idle * 10 + stall * 100))
    beats = [int(v) for v in rng.integers(0, 1 << 12, 300)]
    assert run(SkidBuffer(12), beats, rng=rng, idle=idle, stall=stall) == beats


def test_one_beat_per_cycle_without_stalls():
    cycles = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for value in range(100):
            ctx.set(dut.i.payload, value)
            assert ctx.get(dut.i.ready)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        cycles.append(ctx.get(dut.o.payload))

    dut = SkidBuffer(8)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert cycles == [99]


def test_outputs_and_ready_do_not_follow_the_inputs_within_a_cycle():
    """o.valid/o.payload ignore i.* and i.ready ignores o.ready until the next edge."""
    dut = SkidBuffer(8)
    rng = np.random.default_rng(3)
    changed = []

    def probe(ctx):
        before = (ctx.get(dut.o.valid), ctx.get(dut.o.payload), ctx.get(dut.i.ready))
        ctx.set(dut.o.ready, 1 - ctx.get(dut.o.ready))
        ctx.set(dut.i.valid, 1 - ctx.get(dut.i.valid))
        ctx.set(dut.i.payload, (ctx.get(dut.i.payload) + 1) % 256)
        after = (ctx.get(dut.o.valid), ctx.get(dut.o.payload), ctx.get(dut.i.ready))
        changed.append(before != after)
        # Put the drawn values back.
        ctx.set(dut.o.ready, 1 - ctx.get(dut.o.ready))
        ctx.set(dut.i.valid, 1 - ctx.get(dut.i.valid))
        ctx.set(dut.i.payload, (ctx.get(dut.i.payload) - 1) % 256)

    beats = [int(v) for v in rng.integers(0, 256, 100)]
    assert run(dut, beats, rng=rng, idle=0.3, stall=0.3, probe=probe) == beats
    assert not any(changed)
