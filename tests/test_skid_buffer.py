"""Skid buffer: order, no loss, full rate, and registered outputs and ready."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw.skid_buffer import SkidBuffer
from convaccel.sim.amaranth_frames import pass_through as run, ports_follow_inputs


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
    assert not ports_follow_inputs(SkidBuffer(8), np.random.default_rng(3))
