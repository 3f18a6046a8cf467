"""Array feed: the array's inputs two cycles after the issue, slices reused from the buffer."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.array_feed import ArrayFeed
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["tiny"]
ROWS, COLS, BLOCK = CONFIG.array_rows, CONFIG.array_cols, CONFIG.array_block
MT_BITS = max(1, (-(-CONFIG.max_out_channels // COLS) - 1).bit_length())


@pytest.mark.parametrize("seed", [1, 2])
def test_inputs_arrive_two_cycles_later_and_buffered_slices_repeat(seed):
    rng = np.random.default_rng(seed)
    # A run of issues like the engine's: a step takes each n's slice from the
    # stream, the step's other output tiles read it back from the buffer.
    issues = []
    for _ in range(30):
        size = int(rng.integers(1, BLOCK + 1))
        for mt in range(int(rng.integers(1, 3))):
            for n in range(size):
                issues.append({"n": n, "mt": mt, "from_stream": mt == 0, "swap": n == 0,
                               "zero": bool(rng.integers(2)), "to_output": bool(rng.integers(2)),
                               "act": [int(v) for v in rng.integers(-128, 128, ROWS)]})
            # A gap of two cycles at the end of a step, as after the engine's.
            issues += [None, None]
    seen = []

    async def testbench(ctx, dut):
        history = []                      # what went in at each cycle
        buffer = {}                       # n -> the slice the stream gave
        for cycle in range(len(issues) + 3):
            issue = issues[cycle] if cycle < len(issues) else None
            ctx.set(dut.issued.valid, issue is not None)
            psum = [int(v) for v in rng.integers(-1000, 1000, COLS)]
            ctx.set(dut.psum, psum)        # the accumulator word read two cycles ago
            if issue:
                ctx.set(dut.issued.addr, issue["n"] << MT_BITS | issue["mt"])
                ctx.set(dut.issued.to_output, issue["to_output"])
                for name in ("swap", "from_stream", "zero"):
                    ctx.set(getattr(dut, name), issue[name])
                ctx.set(dut.act, issue["act"] if issue["from_stream"] else [99] * ROWS)
            history.append(issue)
            if len(history) >= 2 and history[-2] is not None:
                # Stage 1: the facts of the previous cycle's issue.
                earlier = history[-2]
                meta = ctx.get(dut.meta)
                assert meta.valid and meta.addr == earlier["n"] << MT_BITS | earlier["mt"]
                assert meta.to_output == earlier["to_output"]
            assert ctx.get(dut.array_swap) == bool(len(history) >= 2 and history[-2]
                                                   and history[-2]["swap"])
            if len(history) >= 3 and history[-3] is not None:
                issued = history[-3]
                want = issued["act"] if issued["from_stream"] else buffer[issued["n"]]
                assert ctx.get(dut.array_act_valid)
                assert list(ctx.get(dut.array_act)) == want, cycle
                assert list(ctx.get(dut.array_psum)) == ([0] * COLS if issued["zero"] else psum)
                if issued["from_stream"]:
                    buffer[issued["n"]] = issued["act"]
                seen.append(issued["from_stream"])
            else:
                assert not ctx.get(dut.array_act_valid)
            await ctx.tick()

    run_testbench(ArrayFeed(CONFIG), testbench)
    assert True in seen and False in seen
