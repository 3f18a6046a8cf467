"""MAC processing element: Amaranth-simulator unit tests and the cocotb regression."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS, MacPE
from convaccel.sim.benches.mac_pe_bench import PeReference


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def test_pe_rejects_row_outside_the_array():
    with pytest.raises(ValueError, match=r"MacPE row must be an integer in 0\.\.1 .*got 2"):
        MacPE(PRESETS["tiny"], row=2)


def test_pe_rejects_a_config_that_is_not_an_accel_config():
    with pytest.raises(TypeError, match="config must be an AccelConfig"):
        MacPE({"act_width": 8})


def test_pe_double_buffered_weight_hand_example():
    """Hand-checked: the swap flag makes the shadow weight active for the next activation."""
    dut = MacPE(PRESETS["tiny"], row=1)
    seen = []

    async def testbench(ctx):
        async def step(act=0, swap=0, psum=0, load=None, en=1):
            ctx.set(dut.en, en)
            ctx.set(dut.act_in, act)
            ctx.set(dut.swap_in, swap)
            ctx.set(dut.psum_in, psum)
            data, row = load if load else (0, 0)
            ctx.set(dut.wload_in, {"data": data, "row": row, "valid": int(load is not None)})
            await ctx.tick()
            seen.append(ctx.get(dut.psum_out))

        # A partial sum meets the product of the activation three cycles
        # before it; a swap takes effect for the activation after the one
        # beside it; a stalled cycle (en = 0) does not count.
        await step(load=(3, 1))                   # shadow = 3
        await step(load=(9, 0))                   # row 0 beat: not ours
        await step(swap=1)                        # active = 3 from the next activation on
        await step(act=2)
        await step(act=5, load=(7, 1))            # shadow = 7
        await step(act=1, swap=1)                 # the new tile after this one
        await step(act=1, psum=100)               # 100 + 2*3
        await step(act=-4, psum=10)               # 10 + 5*3
        await step(act=99, psum=1, en=0)          # stalled: holds 25, takes nothing
        await step(act=-128, psum=0)              # 0 + 1*3 (the old tile's weight)
        await step(psum=0)                        # 0 + 1*7
        await step(psum=-5)                       # -5 + -4*7
        await step(psum=0)                        # 0 + -128*7

    simulate(dut, testbench)
    assert seen[6:] == [106, 25, 25, 3, 7, -5 - 28, -896]


def test_pe_matches_reference_in_amaranth_sim():
    cfg = PRESETS["tiny"]
    dut = MacPE(cfg, row=1)
    rng = np.random.default_rng(7)
    ref = PeReference(row=1, acc_width=cfg.acc_width)

    async def testbench(ctx):
        for cycle in range(400):
            inputs = dict(
                en=int(rng.random() >= 0.3),
                act_in=int(rng.integers(cfg.act_min, cfg.act_max + 1)),
                swap_in=int(rng.random() < 0.25),
                psum_in=int(rng.integers(-(1 << 30), 1 << 30)),
                wload_in=(int(rng.integers(cfg.weight_min, cfg.weight_max + 1)),
                          int(rng.integers(0, 2)), int(rng.random() < 0.5)))
            for name in ("en", "act_in", "swap_in", "psum_in"):
                ctx.set(getattr(dut, name), inputs[name])
            data, row, valid = inputs["wload_in"]
            ctx.set(dut.wload_in, {"data": data, "row": row, "valid": valid})
            await ctx.tick()
            ref.step(**inputs)
            load = ctx.get(dut.wload_out)
            got = (ctx.get(dut.act_out), ctx.get(dut.swap_out), ctx.get(dut.psum_out),
                   (load.data, load.row, load.valid))
            want = (ref.act_out, ref.swap_out, ref.psum_out, ref.wload_out)
            assert got == want, f"cycle {cycle}, inputs {inputs}"

    simulate(dut, testbench)


@pytest.mark.cocotb
def test_pe_cocotb_regression(run_bench, sim_config, sim_seed):
    from convaccel.sim.regression import REGRESSION_CONFIGS

    run_bench("mac_pe", REGRESSION_CONFIGS[sim_config], sim_seed)
