"""Engine counters: every running cycle is one issue or one stall, charged as the table says."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.engine_counters import EngineCounters, issue_status_layout
from convaccel.sim.amaranth_frames import run_testbench

CONFIG = PRESETS["default"]
FLAGS = list(issue_status_layout().members)


def charged(st):
    """The counter a cycle goes to, by the module's table (hand-written order)."""
    if not st["running"]:
        return None
    if st["issue"]:
        return "active_cycles"
    if st["issued_all"]:
        return "output_stall" if st["out_blocked"] else None
    for flag, counter in (("weights_ok", "weight_stall"), ("settled", "weight_stall"),
                          ("drain_ok", "drain_stall"), ("credit_ok", "output_stall")):
        if not st[flag]:
            return counter
    return "input_stall"


@pytest.mark.parametrize("seed", [1, 2])
def test_counts_follow_the_stall_table(seed):
    rng = np.random.default_rng(seed)
    expected = {}

    async def testbench(ctx, dut):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        want = dict.fromkeys(("busy_cycles", "active_cycles", "issued_macs", "input_stall",
                              "output_stall", "weight_stall", "drain_stall"), 0)
        for _ in range(2000):
            # Mostly-true flags, so that every branch of the table is reached.
            st = {flag: int(rng.random() < 0.8) for flag in FLAGS}
            st["issued_all"] = int(rng.random() < 0.2)
            # The engine issues only when every condition holds.
            st["issue"] &= st["running"] & (1 - st["issued_all"]) & all(
                st[flag] for flag in ("weights_ok", "settled", "drain_ok", "credit_ok"))
            rows, cols = int(rng.integers(0, CONFIG.array_rows + 1)), \
                int(rng.integers(0, CONFIG.array_cols + 1))
            for flag, value in st.items():
                ctx.set(getattr(dut.status, flag), value)
            ctx.set(dut.rows, rows)
            ctx.set(dut.cols, cols)
            want["busy_cycles"] += st["running"]
            counter = charged(st)
            if counter:
                want[counter] += 1
            if st["issue"]:
                want["issued_macs"] += rows * cols
            await ctx.tick()
        for flag in FLAGS:
            ctx.set(getattr(dut.status, flag), 0)
        await ctx.tick().repeat(3)          # the counts trail the events by two cycles
        got = ctx.get(dut.counters)
        expected.update(want)
        assert {name: getattr(got, name) for name in want} == want
        assert min(want.values()) > 0, want
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.tick().repeat(3)
        assert all(getattr(ctx.get(dut.counters), name) == 0 for name in want)

    run_testbench(EngineCounters(CONFIG), testbench)
