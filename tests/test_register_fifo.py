"""Register FIFO: order, no loss, full rate, ports that do not follow each other
within a cycle, and a clear error for a bad depth."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw.register_fifo import RegisterFIFO
from convaccel.sim.amaranth_frames import pass_through as run, ports_follow_inputs


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_every_beat_arrives_once_in_order(depth, idle, stall):
    rng = np.random.default_rng(depth + int(idle * 10 + stall * 100))
    beats = [int(v) for v in rng.integers(0, 1 << 12, 300)]
    assert run(RegisterFIFO(12, depth), beats, rng=rng, idle=idle, stall=stall) == beats


def test_one_beat_per_cycle_without_stalls():
    dut = RegisterFIFO(8)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for value in range(100):
            ctx.set(dut.i.payload, value)
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                seen.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # One cycle of latency, then one beat every cycle.
    assert seen == list(range(99))


def test_outputs_and_ready_do_not_follow_the_inputs_within_a_cycle():
    """o.valid/o.payload ignore i.* and i.ready ignores o.ready until the next edge."""
    assert not ports_follow_inputs(RegisterFIFO(8), np.random.default_rng(5))


@pytest.mark.parametrize("depth", [1, 0, 2.5])
def test_a_bad_depth_names_the_parameter(depth):
    with pytest.raises(ValueError, match="depth"):
        RegisterFIFO(8, depth)
