"""Netlist helpers: checked exhaustively against plain Python."""

import itertools

from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from convaccel.hw.helpers import smallest_of


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
