"""Netlist helpers: checked exhaustively against plain Python."""

import itertools

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from convaccel.hw.helpers import smallest_of, up_down, up_down_test


def test_smallest_of_is_the_minimum_of_three_and_says_when_the_first_wins():
    first, second = Signal(4), Signal(4)
    limit = 6
    smallest, first_least = smallest_of(first, second, limit)
    got, flag = Signal(4), Signal()
    m = Module()
    m.d.comb += [got.eq(smallest), flag.eq(first_least)]
    wrong = []

    async def testbench(ctx):
        for a, b in itertools.product(range(16), repeat=2):
            ctx.set(first, a)
            ctx.set(second, b)
            if ctx.get(got) != min(a, b, limit) or ctx.get(flag) != (a <= b and a <= limit):
                wrong.append((a, b, ctx.get(got), ctx.get(flag)))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert not wrong, wrong[:5]


def test_up_down_and_its_test_follow_count_plus_up_minus_down():
    """Every count 0..14 and every (up, down): the new count and its test
    ("is 1", "< 5") equal plain arithmetic, given the test's value as the flag."""
    count, up, down = Signal(4), Signal(), Signal()
    one, small = Signal(), Signal()
    got, got_one, got_small = Signal(4), Signal(), Signal()
    m = Module()
    m.d.comb += [got.eq(up_down(count, up, down)),
                 got_one.eq(up_down_test(count, one, up, down, lambda c: c == 1)),
                 got_small.eq(up_down_test(count, small, up, down, lambda c: c < 5))]
    wrong = []

    async def testbench(ctx):
        for c, u, d in itertools.product(range(1, 15), (0, 1), (0, 1)):
            for signal, value in ((count, c), (up, u), (down, d), (one, c == 1), (small, c < 5)):
                ctx.set(signal, value)
            new = c + u - d
            seen = (ctx.get(got), ctx.get(got_one), ctx.get(got_small))
            if seen != (new, new == 1, new < 5):
                wrong.append((c, u, d, seen))

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    assert not wrong, wrong[:5]
