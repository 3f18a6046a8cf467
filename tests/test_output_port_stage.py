"""Output port stage: in order, full rate, registered, and hold never withdraws a beat."""

import numpy as np
import pytest

from convaccel.hw.output_port_stage import OutputPortStage
from convaccel.sim.amaranth_frames import pass_through, run_testbench


@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.5), (0.4, 0.4)])
def test_every_beat_arrives_once_in_order(idle, stall):
    rng = np.random.default_rng(int(idle * 10 + stall * 100) + 7)
    beats = [int(v) for v in rng.integers(0, 1 << 12, 300)]
    assert pass_through(OutputPortStage(12), beats, rng=rng, idle=idle, stall=stall) == beats


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hold_keeps_an_offered_beat_and_offers_nothing_new(seed):
    rng = np.random.default_rng(seed)
    beats = [int(v) for v in rng.integers(0, 1 << 12, 400)]
    received = []

    async def testbench(ctx, dut):
        sent, offered, held_empty = 0, None, False
        for cycle in range(4000):
            hold = rng.random() < 0.3
            offer = sent < len(beats) and rng.random() < 0.7
            ctx.set(dut.hold, hold)
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, beats[sent])
            ready = rng.random() < 0.5
            ctx.set(dut.o.ready, ready)
            valid, payload = ctx.get(dut.o.valid), ctx.get(dut.o.payload)
            # A beat once offered stays offered, unchanged, until taken.
            if offered is not None:
                assert valid and payload == offered, cycle
            # After a held cycle with nothing on the output, nothing appears.
            if held_empty:
                assert not valid, cycle
            if hold:
                assert not ctx.get(dut.i.ready)
            else:                       # i.ready: the skid register is empty
                assert ctx.get(dut.empty) == (not valid and ctx.get(dut.i.ready))
            took = offer and ctx.get(dut.i.ready)
            if valid and ready:
                received.append(payload)
            offered = payload if valid and not ready else None
            held_empty = hold and (not valid or ready)
            await ctx.tick()
            sent += bool(took)
            if len(received) == len(beats):
                return
        raise AssertionError(f"{len(received)} of {len(beats)} beats arrived")

    run_testbench(OutputPortStage(12), testbench)
    assert received == beats

