"""Requantization + activation unit: Amaranth-simulator unit tests and cocotb regression."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.golden import clamp_activation, relu, requantize
from convaccel.hw import PRESETS, Activation, RequantActivation
from convaccel.sim.regression import REGRESSION_CONFIGS
from convaccel.sim.requant_streams import golden_requant


async def write_params(ctx, dut, params):
    """Write ``params`` (channel: (bias, multiplier, shift)) one channel per cycle."""
    for channel, (bias, multiplier, shift) in params.items():
        ctx.set(dut.param_en, 1)
        ctx.set(dut.param_addr, channel)
        ctx.set(dut.param_data, {"bias": bias, "multiplier": multiplier, "shift": shift})
        await ctx.tick()
    ctx.set(dut.param_en, 0)


def stream_through(dut, params, beats, activation, *, rng, idle=0.3, stall=0.3, max_cycles=None,
                   clamp_high=0, zero_point=0):
    """Write ``params`` (channel: (bias, multiplier, shift)) then push ``beats``
    (dicts with a scalar ``acc`` and a ``channel``, one lane) with random
    gaps/back-pressure; return the outputs as dicts with ``value``, ``channel``."""
    received = []
    max_cycles = max_cycles or 20 * len(beats) + 100

    async def testbench(ctx):
        ctx.set(dut.activation, activation)
        ctx.set(dut.clamp_high, clamp_high)
        ctx.set(dut.zero_point, zero_point)
        await write_params(ctx, dut, params)
        sent = 0
        for _ in range(max_cycles):
            offer = sent < len(beats) and rng.random() >= idle
            ctx.set(dut.i.valid, offer)
            if offer:
                beat = beats[sent]
                ctx.set(dut.i.payload, {"psum": [beat["acc"]], "group": beat["channel"],
                                        "last": beat["last"]})
            ctx.set(dut.o.ready, rng.random() >= stall)
            taken = offer and ctx.get(dut.i.ready)
            out = ctx.get(dut.o.valid) and ctx.get(dut.o.ready)
            if out:
                payload = ctx.get(dut.o.payload)
                received.append({"value": payload.data[0], "last": payload.last})
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


def test_rejects_bad_lane_counts():
    with pytest.raises(ValueError, match=r"lanes must be an integer in 1\.\.4 .*got 5"):
        RequantActivation(PRESETS["tiny"], lanes=5)


@pytest.mark.parametrize("activation", [Activation.NONE, Activation.RELU, Activation.CLAMP])
def test_hand_checked_rounding_and_saturation(activation):
    """Worked by hand: shift 1 rounds halves up; 8-bit results saturate."""
    dut = RequantActivation(PRESETS["tiny"])
    params = {0: (0, 1, 1), 1: (0, 3, 2), 2: (0, 1, 0), 3: (-1000, 1, 0)}
    beats = [
        {"acc": 3, "channel": 0, "last": 0},      # (3 + 1) >> 1 = 2       (1.5 -> 2)
        {"acc": -3, "channel": 0, "last": 0},     # (-3 + 1) >> 1 = -1     (-1.5 -> -1)
        {"acc": -5, "channel": 0, "last": 0},     # (-5 + 1) >> 1 = -2     (-2.5 -> -2)
        {"acc": 10, "channel": 1, "last": 0},     # (30 + 2) >> 2 = 8      (7.5 -> 8)
        {"acc": -10, "channel": 1, "last": 0},    # (-30 + 2) >> 2 = -7    (-7.5 -> -7)
        {"acc": 200, "channel": 2, "last": 0},    # 200 -> 127 (saturate)
        {"acc": -129, "channel": 2, "last": 1},   # -129 -> -128 (saturate)
        {"acc": 1000, "channel": 3, "last": 1},   # bias -1000: 0 -> 0
        {"acc": 1100, "channel": 3, "last": 1},   # bias -1000: 100 -> 100
    ]
    hand = [2, -1, -2, 8, -7, 127, -128, 0, 100]
    if activation == Activation.RELU:
        hand = [max(v, 0) for v in hand]
    if activation == Activation.CLAMP:     # clamp_high 6: ReLU6 at unit scale
        hand = [2, 0, 0, 6, 0, 6, 0, 0, 6]
    out = stream_through(dut, params, beats, activation, rng=np.random.default_rng(1),
                         clamp_high=6)
    assert [b["value"] for b in out] == hand
    assert [b["last"] for b in out] == [b["last"] for b in beats]


@pytest.mark.parametrize("activation", [Activation.NONE, Activation.RELU, Activation.CLAMP])
@pytest.mark.parametrize("preset", ["tiny", "odd"])
def test_random_beats_match_golden_in_amaranth_sim(preset, activation):
    cfg = REGRESSION_CONFIGS[preset]
    rng = np.random.default_rng(11)
    dut = RequantActivation(cfg)
    params = {c: (int(rng.integers(cfg.bias_min, cfg.bias_max + 1)),
                  int(rng.integers(0, cfg.max_multiplier + 1)),
                  int(rng.integers(0, cfg.max_shift + 1)))
              for c in range(cfg.max_out_channels)}
    params[0] = (cfg.bias_max, cfg.max_multiplier, cfg.max_shift)
    low, high = cfg.acc_low - cfg.bias_min, cfg.acc_high - cfg.bias_max
    accs = np.concatenate([[low, high, 0, -1], rng.integers(low, high + 1, 250)])
    channels = rng.integers(0, cfg.max_out_channels, len(accs))
    beats = [{"acc": int(a), "channel": int(c), "last": int(i % 7 == 0)}
             for i, (a, c) in enumerate(zip(accs, channels))]
    clamp_high = int(rng.integers(0, cfg.act_max + 1))
    out = stream_through(dut, params, beats, activation, rng=rng, clamp_high=clamp_high)
    bias = np.array([params[c][0] for c in channels])
    multiplier = np.array([params[c][1] for c in channels])
    shift = np.array([params[c][2] for c in channels])
    expected = requantize(accs + bias, multiplier, shift, bits=cfg.act_width)
    if activation == Activation.RELU:
        expected = relu(expected)
    if activation == Activation.CLAMP:
        expected = clamp_activation(expected, 0, clamp_high)
    assert [b["value"] for b in out] == expected.tolist()


def test_hand_checked_output_zero_point():
    """Worked by hand: zo is added after the rounding shift and before saturation;
    ReLU clamps at zo, the clamp at [zo, clamp_high] (clamp_high below zo wins)."""
    dut = RequantActivation(PRESETS["tiny"])
    params = {0: (0, 1, 1), 1: (0, 1, 0)}
    accs = [5, -5, 300, -300, 0, -60, 100, 200]
    channels = [0, 0, 0, 0, 1, 1, 1, 1]
    beats = [{"acc": a, "channel": c, "last": 0} for a, c in zip(accs, channels)]
    cases = [
        # (activation, zo, clamp_high, hand values)
        (Activation.NONE, 10, 0, [13, 8, 127, -128, 10, -50, 110, 127]),
        (Activation.NONE, -100, 0, [-97, -102, 50, -128, -100, -128, 0, 100]),
        (Activation.RELU, -100, 0, [-97, -100, 50, -100, -100, -100, 0, 100]),
        (Activation.CLAMP, -100, -70, [-97, -100, -70, -100, -100, -100, -70, -70]),
        (Activation.CLAMP, 20, 5, [5] * 8),        # clamp_high < zo: min(max(y, zo), 5)
    ]
    for activation, zo, high, hand in cases:
        out = stream_through(dut, params, beats, activation, rng=np.random.default_rng(2),
                             clamp_high=high, zero_point=zo)
        values = [b["value"] for b in out]
        expected = golden_requant(accs, [params[c][1] for c in channels],
                                  [params[c][2] for c in channels], bits=8,
                                  activation=activation, zero_point=zo, clamp_high=high)
        assert values == hand == expected.tolist(), (activation, zo, high, values)


@pytest.mark.parametrize("activation", [Activation.NONE, Activation.RELU, Activation.CLAMP])
@pytest.mark.parametrize("preset", ["tiny", "odd"])
def test_random_beats_with_zero_points_match_golden(preset, activation):
    """Random output zero points and signed clamp bounds (some below zo), random
    parameters and accumulators including the range ends, against golden.conv_layer."""
    cfg = REGRESSION_CONFIGS[preset]
    rng = np.random.default_rng(21)
    params = {c: (int(rng.integers(-1000, 1001)), int(rng.integers(0, cfg.max_multiplier + 1)),
                  int(rng.integers(0, cfg.max_shift + 1)))
              for c in range(cfg.max_out_channels)}
    params[0] = (0, 1, 0)                  # acc straight through: saturation with zo
    low, high = cfg.acc_low + 1000, cfg.acc_high - 1000
    for zo in (int(rng.integers(cfg.act_min, 0)), int(rng.integers(1, cfg.act_max + 1)),
               cfg.act_min, cfg.act_max):
        dut = RequantActivation(cfg)
        accs = np.concatenate([[low, high, 0, -1, cfg.act_max - zo, cfg.act_max - zo + 1,
                                cfg.act_min - zo, cfg.act_min - zo - 1],
                               rng.integers(low, high + 1, 60),
                               rng.integers(2 * cfg.act_min, 2 * cfg.act_max, 60)])
        channels = rng.integers(0, cfg.max_out_channels, len(accs))
        channels[:8] = 0
        beats = [{"acc": int(a), "channel": int(c), "last": int(i % 5 == 0)}
                 for i, (a, c) in enumerate(zip(accs, channels))]
        clamp_high = int(rng.integers(cfg.act_min, cfg.act_max + 1))
        out = stream_through(dut, params, beats, activation, rng=rng, clamp_high=clamp_high,
                             zero_point=zo)
        bias = np.array([params[c][0] for c in channels])
        expected = golden_requant(accs + bias, [params[c][1] for c in channels],
                                  [params[c][2] for c in channels], bits=cfg.act_width,
                                  activation=activation, zero_point=zo, clamp_high=clamp_high)
        assert [b["value"] for b in out] == expected.tolist(), (zo, clamp_high)


@pytest.mark.cocotb
def test_requant_cocotb_regression(run_bench, sim_config, sim_seed):
    run_bench("requant_activation", REGRESSION_CONFIGS[sim_config], sim_seed)


@pytest.mark.parametrize("zero_point", [0, -7])
def test_several_lanes_read_their_own_channel_parameters(zero_point):
    """lanes=3, 8 channels: banks by lane, the missing lane of group 2 gives 0 (also with
    an output zero point)."""
    cfg = PRESETS["tiny"].replace(max_out_channels=8)
    dut = RequantActivation(cfg, lanes=3)
    rng = np.random.default_rng(12)
    params = {c: (int(rng.integers(-500, 500)), int(rng.integers(1, 300)),
                  int(rng.integers(0, 12))) for c in range(8)}
    beats = [{"acc": [int(v) for v in rng.integers(-(1 << 16), 1 << 16, 3)],
              "group": int(rng.integers(0, 3)), "last": 0} for _ in range(60)]
    received = []

    async def testbench(ctx):
        ctx.set(dut.zero_point, zero_point)
        await write_params(ctx, dut, params)
        ctx.set(dut.o.ready, 1)
        for beat in beats + [None] * (dut.LATENCY + 2):
            ctx.set(dut.i.valid, beat is not None)
            if beat is not None:
                ctx.set(dut.i.payload, {"psum": beat["acc"], "group": beat["group"],
                                        "last": beat["last"]})
            if ctx.get(dut.o.valid):
                received.append([int(v) for v in ctx.get(dut.o.payload.data)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    expected = []
    for beat in beats:
        row = []
        for lane, acc in enumerate(beat["acc"]):
            channel = beat["group"] * 3 + lane
            if channel >= 8:
                row.append(0)
                continue
            bias, multiplier, shift = params[channel]
            row.append(int(requantize(acc + bias, multiplier, shift, bits=8,
                                      zero_point=zero_point)))
        expected.append(row)
    assert received == expected


def test_latency_is_as_documented_and_ready_does_not_follow_o_ready():
    """A beat shows on ``o`` LATENCY cycles after it is taken; ``i.ready`` is a
    registered credit count, unchanged within a cycle by ``o.ready``."""
    dut = RequantActivation(PRESETS["tiny"], lanes=2)
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"psum": [5, 6], "group": 0, "last": 1})
        assert ctx.get(dut.i.ready)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for cycle in range(1, 3 * dut.LATENCY):
            if ctx.get(dut.o.valid):
                seen.setdefault("valid_at", cycle)
            await ctx.tick()
        # Fill every credit with o.ready low: i.ready drops, and raising
        # o.ready does not raise it in the same cycle.
        ctx.set(dut.i.valid, 1)
        for _ in range(dut.fifo_depth):
            await ctx.tick()
        seen["full"] = ctx.get(dut.i.ready)
        ctx.set(dut.o.ready, 1)
        seen["same_cycle"] = ctx.get(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        await ctx.tick()
        seen["next_cycle"] = ctx.get(dut.i.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {"valid_at": dut.LATENCY, "full": 0, "same_cycle": 0, "next_cycle": 1}
