"""Requantization + activation unit: Amaranth-simulator unit tests and cocotb regression."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.golden import relu, requantize
from convaccel.hw import PRESETS, Activation, RequantActivation
from convaccel.sim.regression import REGRESSION_CONFIGS


def stream_through(dut, params, beats, activation, *, rng, idle=0.3, stall=0.3, max_cycles=None):
    """Write ``params`` then push ``beats`` with random gaps/back-pressure; return outputs."""
    received = []
    max_cycles = max_cycles or 20 * len(beats) + 100

    async def testbench(ctx):
        ctx.set(dut.activation, activation)
        for channel, (multiplier, shift) in params.items():
            ctx.set(dut.param_en, 1)
            ctx.set(dut.param_addr, channel)
            ctx.set(dut.param_data, {"multiplier": multiplier, "shift": shift})
            await ctx.tick()
        ctx.set(dut.param_en, 0)
        sent = 0
        for _ in range(max_cycles):
            offer = sent < len(beats) and rng.random() >= idle
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload, beats[sent])
            ctx.set(dut.o.ready, rng.random() >= stall)
            taken = offer and ctx.get(dut.i.ready)
            out = ctx.get(dut.o.valid) and ctx.get(dut.o.ready)
            if out:
                payload = ctx.get(dut.o.payload)
                received.append({"value": payload.value, "channel": payload.channel,
                                 "last": payload.last})
            await ctx.tick()
            sent += bool(taken)
            if len(received) == len(beats):
                return
        raise AssertionError(f"timeout: {len(received)} of {len(beats)} beats after {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return received


def test_rejects_a_config_that_is_not_an_accel_config():
    with pytest.raises(TypeError, match="config must be an AccelConfig"):
        RequantActivation(None)


@pytest.mark.parametrize("activation", [Activation.NONE, Activation.RELU])
def test_hand_checked_rounding_and_saturation(activation):
    """Worked by hand: shift 1 rounds halves up; 8-bit results saturate."""
    dut = RequantActivation(PRESETS["tiny"])
    params = {0: (1, 1), 1: (3, 2), 2: (1, 0)}
    beats = [
        {"acc": 3, "channel": 0, "last": 0},      # (3 + 1) >> 1 = 2       (1.5 -> 2)
        {"acc": -3, "channel": 0, "last": 0},     # (-3 + 1) >> 1 = -1     (-1.5 -> -1)
        {"acc": -5, "channel": 0, "last": 0},     # (-5 + 1) >> 1 = -2     (-2.5 -> -2)
        {"acc": 10, "channel": 1, "last": 0},     # (30 + 2) >> 2 = 8      (7.5 -> 8)
        {"acc": -10, "channel": 1, "last": 0},    # (-30 + 2) >> 2 = -7    (-7.5 -> -7)
        {"acc": 200, "channel": 2, "last": 0},    # 200 -> 127 (saturate)
        {"acc": -129, "channel": 2, "last": 1},   # -129 -> -128 (saturate)
        {"acc": 1000, "channel": 3, "last": 1},   # reset params (1, 0): 1000 -> 127
    ]
    hand = [2, -1, -2, 8, -7, 127, -128, 127]
    if activation == Activation.RELU:
        hand = [max(v, 0) for v in hand]
    out = stream_through(dut, params, beats, activation, rng=np.random.default_rng(1))
    assert [b["value"] for b in out] == hand
    assert [(b["channel"], b["last"]) for b in out] == [(b["channel"], b["last"]) for b in beats]


@pytest.mark.parametrize("activation", [Activation.NONE, Activation.RELU])
@pytest.mark.parametrize("preset", ["tiny", "odd"])
def test_random_beats_match_golden_in_amaranth_sim(preset, activation):
    cfg = REGRESSION_CONFIGS[preset]
    rng = np.random.default_rng(11)
    dut = RequantActivation(cfg)
    params = {c: (int(rng.integers(0, cfg.max_multiplier + 1)), int(rng.integers(0, cfg.max_shift + 1)))
              for c in range(cfg.max_out_channels)}
    params[0] = (cfg.max_multiplier, cfg.max_shift)
    accs = np.concatenate([[cfg.acc_low, cfg.acc_high, 0, -1],
                           rng.integers(cfg.acc_low, cfg.acc_high + 1, 250)])
    channels = rng.integers(0, cfg.max_out_channels, len(accs))
    beats = [{"acc": int(a), "channel": int(c), "last": int(i % 7 == 0)}
             for i, (a, c) in enumerate(zip(accs, channels))]
    out = stream_through(dut, params, beats, activation, rng=rng)
    multiplier = np.array([params[c][0] for c in channels])
    shift = np.array([params[c][1] for c in channels])
    expected = requantize(accs, multiplier, shift, bits=cfg.act_width)
    if activation == Activation.RELU:
        expected = relu(expected)
    assert [b["value"] for b in out] == expected.tolist()


@pytest.mark.cocotb
def test_requant_cocotb_regression(run_bench, sim_config, sim_seed):
    run_bench("requant_activation", REGRESSION_CONFIGS[sim_config], sim_seed)
