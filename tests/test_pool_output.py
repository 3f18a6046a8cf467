"""Pooling output: fold, finish and credit-counted FIFO, with a memory modelled in Python."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.pool_output import PoolOutput
from convaccel.sim.amaranth_frames import run_testbench

TINY = PRESETS["tiny"]                                    # 2 lanes: the divider keeps up
WIDE = TINY.replace(array_cols=12, max_out_channels=12)   # 12 lanes > 9 taps of a 3x3 window


def pooled(taps, average):
    """Per lane: the max, or floor((2 * sum + n) / (2 * n)) (round half up, golden.pool2d)."""
    columns = list(zip(*taps))
    n = len(taps)
    if average:
        return [(2 * sum(column) + n) // (2 * n) for column in columns]
    return [max(column) for column in columns]


async def stream_windows(ctx, dut, windows, rng, *, issue_rate, ready_rate, max_cycles=5000):
    """Issue the windows' taps (a window's first only on ``may_start``), acting as a memory of
    read latency ``READ_LATENCY``; returns the beats taken from ``o`` and the most windows ever
    held."""
    taps = [(w, t) for w, window in enumerate(windows) for t in range(len(window))]
    issued, taken, held, most = 0, [], 0, 0
    lanes = len(windows[0][0])
    in_flight = [[0] * lanes] * dut.READ_LATENCY     # words on their way back, oldest first
    for _ in range(max_cycles):
        w, t = taps[issued] if issued < len(taps) else (0, 0)
        issue = (issued < len(taps) and rng.random() < issue_rate
                 and (t != 0 or ctx.get(dut.may_start)))
        ctx.set(dut.issue, issue)
        ctx.set(dut.tag.first, t == 0)
        ctx.set(dut.tag.end, t == len(windows[w]) - 1)
        ctx.set(dut.tag.last, w == len(windows) - 1)
        ctx.set(dut.read_data, in_flight[0])
        in_flight = in_flight[1:] + [windows[w][t] if issue else
                                     [int(v) for v in rng.integers(-128, 128, lanes)]]
        ready = rng.random() < ready_rate
        ctx.set(dut.o.ready, ready)
        if ctx.get(dut.o.valid) and ready:
            payload = ctx.get(dut.o.payload)
            taken.append((list(payload.data), payload.last))
            held -= 1
        if issue:
            issued += 1
            held += t == 0
        most = max(most, held)
        await ctx.tick()
        if issued == len(taps) and len(taken) == len(windows) and ctx.get(dut.empty):
            break
    ctx.set(dut.issue, 0)
    return taken, most


@pytest.mark.parametrize("config, kernel, average", [
    (TINY, 2, 0), (TINY, 2, 1), (TINY, 3, 1), (TINY, 1, 1), (WIDE, 3, 1), (WIDE, 2, 1),
    (WIDE, 3, 0)])
@pytest.mark.parametrize("issue_rate, ready_rate", [(1.0, 1.0), (0.6, 0.3), (1.0, 0.1)])
def test_windows_come_out_pooled_in_order_without_overflow(config, kernel, average,
                                                            issue_rate, ready_rate):
    lanes = config.array_cols
    rng = np.random.default_rng(kernel * 10 + average + lanes)
    windows = [[[int(v) for v in rng.integers(-128, 128, lanes)] for _ in range(kernel ** 2)]
               for _ in range(14)]
    windows[0] = [[127] * lanes] * kernel ** 2          # range ends: sums stay exact
    windows[1] = [[-128] * lanes] * kernel ** 2
    want = [(pooled(window, average), int(w == len(windows) - 1))
            for w, window in enumerate(windows)]
    result = {}

    async def testbench(ctx, dut):
        ctx.set(dut.kernel, kernel)
        ctx.set(dut.average, average)
        await ctx.tick()                  # the finish registers its per-kernel constants
        result["taken"], result["most"] = await stream_windows(
            ctx, dut, windows, rng, issue_rate=issue_rate, ready_rate=ready_rate)
        assert ctx.get(dut.empty) and not ctx.get(dut.o.valid)

    run_testbench(PoolOutput(config), testbench)
    assert result["taken"] == want
    assert result["most"] <= PoolOutput.FIFO_DEPTH


def test_clear_empties_the_fifo_and_gives_back_the_credits():
    rng = np.random.default_rng(5)
    windows = [[[int(v) for v in rng.integers(-128, 128, 2)]] for _ in range(10)]   # 1x1

    async def testbench(ctx, dut):
        ctx.set(dut.kernel, 1)
        await ctx.tick()
        # Nobody takes the output: eight windows fill the FIFO, the ninth must wait.
        taken, most = await stream_windows(ctx, dut, windows[:8], rng, issue_rate=1.0,
                                           ready_rate=0.0, max_cycles=30)
        assert taken == [] and most == PoolOutput.FIFO_DEPTH
        assert ctx.get(dut.o.valid) and not ctx.get(dut.may_start) and not ctx.get(dut.empty)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert not ctx.get(dut.o.valid) and ctx.get(dut.may_start) and ctx.get(dut.empty)
        # After the clear, windows come out as usual.
        taken, _ = await stream_windows(ctx, dut, windows[8:], rng, issue_rate=1.0,
                                        ready_rate=1.0)
        assert taken == [(window[0], int(w == 1)) for w, window in enumerate(windows[8:])]

    run_testbench(PoolOutput(TINY), testbench)
