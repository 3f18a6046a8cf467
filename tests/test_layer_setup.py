"""Set-up products without DSP blocks: the serial multiplier and the layer set-up unit."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.layer_setup import LayerSetup
from convaccel.hw.serial_multiplier import SerialMultiplier


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_serial_multiplier_products_and_cycles():
    dut = SerialMultiplier(7, 5, 127 * 31)
    rng = np.random.default_rng(4)
    cases = [(0, 0), (127, 31), (1, 1), (5, 0), (0, 9)] + [
        tuple(int(v) for v in rng.integers(0, (128, 32))) for _ in range(40)]
    seen = []

    async def testbench(ctx):
        for a, b in cases:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert not ctx.get(dut.ready)
            cycles = 0
            while not ctx.get(dut.ready):
                await ctx.tick()
                cycles += 1
            seen.append((ctx.get(dut.product), cycles))

    simulate(dut, testbench)
    for (a, b), (product, cycles) in zip(cases, seen):
        assert product == a * b
        assert cycles == b.bit_length() + 1     # one per bit of b, then ready


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_serial_multiplier_refuses_bad_widths(bad):
    with pytest.raises(ValueError, match="a_width must be a positive integer"):
        SerialMultiplier(bad, 4, 10)


def test_layer_setup_products_per_layer():
    """Two layers back to back; ready never shows the previous layer's products."""
    config = PRESETS["default"]
    dut = LayerSetup(config)
    layers = [dict(kh=3, kw=5, p=14, q=10, groups=2, per_group=6),
              dict(kh=1, kw=1, p=64, q=1, groups=8, per_group=1)]
    results = []

    async def testbench(ctx):
        for layer in layers:
            ctx.set(dut.geometry_valid, 0)
            ctx.set(dut.groups_valid, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.kernel_h, layer["kh"])
            ctx.set(dut.kernel_w, layer["kw"])
            for _ in range(3):                     # the geometry comes later
                assert not ctx.get(dut.ready)
                await ctx.tick()
            ctx.set(dut.out_height, layer["p"])
            ctx.set(dut.out_width, layer["q"])
            ctx.set(dut.channel_groups, layer["groups"])
            ctx.set(dut.in_per_group, layer["per_group"])
            ctx.set(dut.geometry_valid, 1)
            ctx.set(dut.groups_valid, 1)
            for _ in range(40):
                if ctx.get(dut.ready):
                    break
                await ctx.tick()
            results.append((ctx.get(dut.ready), ctx.get(dut.n_vectors),
                            ctx.get(dut.k_terms), ctx.get(dut.terms)))

    simulate(dut, testbench)
    rows = config.array_rows
    for layer, (ready, n_vectors, k_terms, terms) in zip(layers, results):
        taps = layer["kh"] * layer["kw"]
        assert ready
        assert n_vectors == layer["p"] * layer["q"]
        assert k_terms == taps * layer["groups"] * rows
        assert terms == taps * layer["per_group"]
