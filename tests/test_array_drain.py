"""Array drain: sums come back to the accumulator buffer or leave in order, latency cycles later."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.array_drain import ArrayDrain
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]
COLS = CONFIG.array_cols
LATENCY, DEPTH = 5, 4
GROUP_BITS = max(1, (-(-CONFIG.max_out_channels // COLS) - 1).bit_length())


@pytest.mark.parametrize("seed", [1, 2])
def test_partial_sums_write_back_and_final_sums_leave_in_order(seed):
    rng = np.random.default_rng(seed)
    addr_max = 1 << (GROUP_BITS + max(1, (CONFIG.array_block - 1).bit_length()))
    sent, got = [], []

    async def testbench(ctx, dut):
        in_flight = []                 # per cycle: the facts issued then (or None)
        sums_of = {}                   # cycle issued -> the sums the "array" gives
        reserved = 0                   # FIFO places held for final vectors, as the engine does
        for cycle in range(3000):
            issue = None
            if cycle < 2500 and rng.random() < 0.7:
                final = bool(rng.integers(2))
                if not final or reserved < DEPTH:
                    issue = {"to_output": final, "last": bool(rng.random() < 0.1),
                             "addr": int(rng.integers(addr_max))}
                    reserved += final
            ctx.set(dut.issued.valid, issue is not None)
            if issue:
                ctx.set(dut.issued.to_output, issue["to_output"])
                ctx.set(dut.issued.last, issue["last"])
                ctx.set(dut.issued.addr, issue["addr"])
                sums_of[cycle] = [int(v) for v in rng.integers(-(1 << 20), 1 << 20, COLS)]
            in_flight.append(issue)
            back = cycle - LATENCY                     # the vector whose sums are out now
            done = in_flight[back] if back >= 0 else None
            ctx.set(dut.sums, sums_of[back] if done else [7] * COLS)
            assert ctx.get(dut.write_en) == bool(done and not done["to_output"]), cycle
            if done and not done["to_output"]:
                assert ctx.get(dut.write_addr) == done["addr"]
                assert list(ctx.get(dut.write_data)) == sums_of[back]
            if done and done["to_output"]:
                sent.append((sums_of[back], done["addr"] & ((1 << GROUP_BITS) - 1),
                             done["last"]))
            ready = rng.random() < 0.6
            ctx.set(dut.result.ready, ready)
            if ready and ctx.get(dut.result.valid):
                beat = ctx.get(dut.result.payload)
                got.append((list(beat.psum), beat.group, bool(beat.last)))
                reserved -= 1
            await ctx.tick()

    run_testbench(ArrayDrain(CONFIG, latency=LATENCY, depth=DEPTH), testbench)
    assert len(sent) > 200
    assert got == sent


@pytest.mark.parametrize("name, kwargs, phrase", [
    ("latency", {"latency": 0, "depth": 4}, "latency must be at least 1, got 0"),
    ("depth", {"latency": 3, "depth": 1}, "depth must be at least 2, got 1"),
])
def test_bad_parameters_are_named(name, kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        ArrayDrain(CONFIG, **kwargs)
