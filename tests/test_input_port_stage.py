"""Input port stage: beats only while open, in order, full rate, ready one flip-flop."""

import numpy as np
import pytest

from convaccel.hw.input_port_stage import InputPortStage
from convaccel.sim.amaranth_frames import run_testbench


def stream_through(beats, *, rng, idle, stall, closed, probe=None):
    """Send ``beats`` with random gaps, stalls and closed cycles; return what left.

    Checks every cycle that ``i.ready`` is 0 when the previous cycle said
    the port would be closed.
    """
    received = []

    async def testbench(ctx, dut):
        sent, was_open = 0, False
        for cycle in range(30 * len(beats) + 50):
            opened = rng.random() >= closed
            offer = sent < len(beats) and rng.random() >= idle
            ctx.set(dut.open_next, opened)
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, beats[sent])
            ctx.set(dut.o.ready, rng.random() >= stall)
            if probe:
                probe(ctx, dut)
            ready = ctx.get(dut.i.ready)
            assert was_open or not ready, cycle
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                received.append(ctx.get(dut.o.payload))
            await ctx.tick()
            sent += bool(offer and ready)
            was_open = opened
            if len(received) == len(beats):
                return
        raise AssertionError(f"{len(received)} of {len(beats)} beats arrived")

    run_testbench(InputPortStage(12), testbench)
    return received


@pytest.mark.parametrize("idle, stall, closed", [
    (0.0, 0.0, 0.0), (0.3, 0.0, 0.2), (0.0, 0.5, 0.3), (0.4, 0.4, 0.5)])
def test_every_beat_arrives_once_in_order_and_only_while_open(idle, stall, closed):
    rng = np.random.default_rng(int(idle * 10 + stall * 100 + closed * 1000))
    beats = [int(v) for v in rng.integers(0, 1 << 12, 300)]
    assert stream_through(beats, rng=rng, idle=idle, stall=stall, closed=closed) == beats


def test_one_beat_per_cycle_while_open_and_unstalled():
    taken = []

    async def testbench(ctx, dut):
        ctx.set(dut.open_next, 1)
        ctx.set(dut.o.ready, 1)
        await ctx.tick()                      # ready is 0 in the first cycle
        ctx.set(dut.i.valid, 1)
        for value in range(100):
            ctx.set(dut.i.payload, value)
            taken.append(ctx.get(dut.i.ready))
            await ctx.tick()

    run_testbench(InputPortStage(8), testbench)
    assert taken == [1] * 100


def test_ready_and_outputs_do_not_follow_the_inputs_within_a_cycle():
    """i.ready ignores o.ready, i.valid and open_next; o.* ignore i.* until the next edge."""
    rng = np.random.default_rng(5)
    changed = []

    def flip(ctx, dut):
        for port in (dut.o.ready, dut.i.valid, dut.open_next):
            ctx.set(port, 1 - ctx.get(port))
        ctx.set(dut.i.payload, (ctx.get(dut.i.payload) + 1) % 4096)

    def probe(ctx, dut):
        watched = (dut.o.valid, dut.o.payload, dut.i.ready)
        before = [ctx.get(port) for port in watched]
        saved = [ctx.get(port) for port in (dut.o.ready, dut.i.valid, dut.open_next,
                                            dut.i.payload)]
        flip(ctx, dut)
        changed.append(before != [ctx.get(port) for port in watched])
        for port, value in zip((dut.o.ready, dut.i.valid, dut.open_next, dut.i.payload), saved):
            ctx.set(port, value)

    beats = [int(v) for v in rng.integers(0, 1 << 12, 100)]
    assert stream_through(beats, rng=rng, idle=0.3, stall=0.3, closed=0.2, probe=probe) == beats
    assert not any(changed)
