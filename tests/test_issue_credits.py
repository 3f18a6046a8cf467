"""Issue credits: the registered acc_idle / credit_left facts (and their next values) follow the counts exactly."""

import numpy as np
import pytest

from convaccel.hw.issue_credits import IssueCredits
from convaccel.sim.amaranth_frames import run_testbench


@pytest.mark.parametrize("seed", [1, 2])
def test_facts_match_the_counts_every_cycle(seed):
    rng = np.random.default_rng(seed)
    places, latency = 4, 6
    seen = set()

    async def testbench(ctx, dut):
        in_flight, free = [], places          # issue cycles of acc vectors; free places
        claimed = 0                           # output places claimed, not yet popped
        for cycle in range(3000):
            assert ctx.get(dut.acc_idle) == (len(in_flight) == 0), cycle
            assert ctx.get(dut.credit_left) == (free != 0), cycle
            seen.add((len(in_flight) == 0, free))
            issue = rng.random() < 0.6
            to_output = rng.random() < 0.5
            issue_acc = issue and not to_output
            issue_out = issue and to_output and free != 0
            written = bool(in_flight) and in_flight[0] + latency <= cycle
            popped = claimed > 0 and rng.random() < 0.4
            for port, value in ((dut.issue_acc, issue_acc), (dut.written, written),
                                (dut.issue_out, issue_out), (dut.popped, popped)):
                ctx.set(port, value)
            # The next cycle's facts, as the engine's one-cycle-ahead decision reads them.
            idle_next = len(in_flight) - written == 0
            assert ctx.get(dut.acc_idle_unless_issued) == idle_next, cycle
            assert ctx.get(dut.credit_left_unless_issued) == (free + popped != 0), cycle
            if free:                          # an output issue needs a place
                assert ctx.get(dut.credit_left_if_issued) == (free + popped - 1 != 0), cycle
            await ctx.tick()
            if written:
                in_flight.pop(0)
            if issue_acc:
                in_flight.append(cycle)
            free += popped - issue_out
            claimed += issue_out - popped

    run_testbench(IssueCredits(max_in_flight=64, places=places), testbench)
    # Both facts were exercised on both sides, including the last place.
    assert {idle for idle, _ in seen} == {True, False}
    assert {0, 1, places} <= {free for _, free in seen}


@pytest.mark.parametrize("name, kwargs", [
    ("max_in_flight", {"max_in_flight": 0, "places": 4}),
    ("places", {"max_in_flight": 8, "places": 2.5}),
])
def test_bad_sizes_are_refused_by_name(name, kwargs):
    with pytest.raises(ValueError, match=f"IssueCredits {name} must be"):
        IssueCredits(**kwargs)
