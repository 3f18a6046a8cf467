"""Issue gate: the registered decision is the issue rule on the facts it was given for the next cycle."""

import numpy as np
import pytest

from convaccel.hw.issue_gate import IssueGate
from convaccel.sim.amaranth_frames import run_testbench

FACTS = ("first", "step_end", "to_output", "has_sums", "spaced", "settled", "done")


def rule(facts, full, acc_idle, credit_left):
    """The issue rule, written out from the engine's documentation."""
    if facts["done"]:
        return False
    if facts["first"] and not full:
        return False                      # the weight tile is not loaded
    if facts["first"] and facts["has_sums"] and not facts["spaced"] and not acc_idle:
        return False                      # earlier sums of the tile may be in flight
    if facts["to_output"] and not credit_left:
        return False                      # no output place
    return not facts["step_end"] or facts["settled"]


@pytest.mark.parametrize("seed", [1, 2])
def test_go_is_the_rule_on_next_cycles_facts(seed):
    rng = np.random.default_rng(seed)
    outcomes = set()

    def random_facts():
        # Mostly permissive, so every term decides some cycles.
        return {name: bool(rng.random() < (0.15 if name == "done" else 0.5)) for name in FACTS}

    async def testbench(ctx, dut):
        expected_go = False                   # reset, and the first cycle
        for cycle in range(4000):
            inputs = {
                "running": rng.random() < 0.95, "from_stream": rng.random() < 0.5,
                "act_valid": rng.random() < 0.7,
                **{name: bool(rng.random() < 0.7) for name in (
                    "full", "full_unless_consumed", "acc_idle", "acc_idle_unless_issued",
                    "credit_left", "credit_left_unless_issued", "credit_left_if_issued")}}
            now, idle, issued = random_facts(), random_facts(), random_facts()
            for name, value in inputs.items():
                ctx.set(getattr(dut, name), value)
            for port, facts in ((dut.now, now), (dut.next_if_idle, idle),
                                (dut.next_if_issue, issued)):
                ctx.set(port, facts)
            go = ctx.get(dut.go)
            assert go == expected_go, cycle
            issue = go and (not inputs["from_stream"] or inputs["act_valid"])
            assert ctx.get(dut.issue) == issue, cycle
            assert ctx.get(dut.act_ready) == (go and inputs["from_stream"]), cycle
            assert ctx.get(dut.check) == (inputs["running"] and rule(
                now, inputs["full"], inputs["acc_idle"], inputs["credit_left"])), cycle
            if issue:                         # what an issue now does to the resources
                expected_go = rule(
                    issued, inputs["full_unless_consumed"] and not now["first"],
                    inputs["acc_idle_unless_issued"] and now["to_output"],
                    inputs["credit_left_if_issued"] if now["to_output"]
                    else inputs["credit_left_unless_issued"])
            else:
                expected_go = rule(idle, inputs["full_unless_consumed"],
                                   inputs["acc_idle_unless_issued"],
                                   inputs["credit_left_unless_issued"])
            expected_go = expected_go and inputs["running"]
            outcomes.add((issue, expected_go))
            await ctx.tick()

    run_testbench(IssueGate(), testbench)
    assert outcomes == {(False, False), (False, True), (True, False), (True, True)}
