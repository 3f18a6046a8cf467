"""Conv core (window generator + engine + requant + pool): layers against golden conv_layer."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.hw.conv_core import ConvCore
from convaccel.sim.amaranth_frames import drive_streams
from convaccel.sim.conv_driver import ConvLayer


def run_layers(config, layers, *, rng, idle=0.2, stall=0.2, max_cycles=200_000):
    """Run layers back to back; return per layer: output beats, error bits, cycles."""
    dut = ConvCore(config)
    results = []

    async def testbench(ctx):
        for layer in layers:
            for channel, params in layer.param_writes():
                ctx.set(dut.param_en, 1)
                ctx.set(dut.param_addr, channel)
                ctx.set(dut.param_data, params)
                await ctx.tick()
            ctx.set(dut.param_en, 0)
            ctx.set(dut.layer, layer.layer_fields())
            ctx.set(dut.job.start, 1)
            await ctx.tick()
            ctx.set(dut.job.start, 0)
            out = []
            (sent_p, sent_w), cycles = await drive_streams(
                ctx, dut, [(dut.pixels, layer.pixel_beats(config)),
                           (dut.weights, layer.weight_beats(config))], dut.out,
                lambda beat: out.append({"data": [int(v) for v in beat.data],
                                         "last": int(beat.last)}),
                rng=rng, idle=idle, stall=stall, max_cycles=max_cycles)
            error = ctx.get(dut.job.error)
            results.append({"out": out, "cycles": cycles, "sent": (sent_p, sent_w),
                            "error": int(error.as_value().value) if hasattr(error, "as_value")
                            else int(error)})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def random_layer(rng, c, h, w, m, r, s, **kwargs):
    groups = kwargs.get("groups", 1)
    return ConvLayer(
        x=rng.integers(-128, 128, (c, h, w)),
        w=rng.integers(-128, 128, (m, c // groups, r, s)),
        bias=rng.integers(-2000, 2000, m),
        multiplier=rng.integers(1, 1 << 12, m), shift=rng.integers(12, 20, m), **kwargs)


LAYERS = {
    "3x3 same + relu + maxpool 2x2": dict(c=3, h=6, w=6, m=4, r=3, s=3, padding=(1, 1, 1, 1),
                                          activation="relu", pool=("max", 2, 2)),
    "1x1 pointwise": dict(c=4, h=4, w=5, m=3, r=1, s=1),
    "depthwise 3x3 stride 2": dict(c=4, h=7, w=7, m=4, r=3, s=3, groups=4, stride=(2, 2),
                                   padding=(1, 1, 1, 1), activation="relu"),
    "dilated, asymmetric padding, avg pool 3x3/2": dict(
        c=2, h=8, w=9, m=2, r=2, s=3, dilation=(2, 1), padding=(1, 0, 2, 1),
        pool=("avg", 3, 2)),
    "fully connected (kernel = image)": dict(c=4, h=3, w=3, m=4, r=3, s=3),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_match_golden_conv_layer(name):
    config = PRESETS["tiny"]
    rng = np.random.default_rng(len(name))
    layer = random_layer(rng, **LAYERS[name], name=name)
    (result,) = run_layers(config, [layer], rng=rng)
    assert result["error"] == 0
    assert result["out"] == layer.expected_beats(config)


def test_back_to_back_layers_and_an_error_in_between():
    config = PRESETS["tiny"]
    rng = np.random.default_rng(1)
    first = random_layer(rng, **LAYERS["1x1 pointwise"], name="first")
    bad = random_layer(rng, c=2, h=4, w=4, m=2, r=3, s=3, pool=("max", 3, 3),
                       name="pool larger than the conv output")
    last = random_layer(rng, **LAYERS["3x3 same + relu + maxpool 2x2"], name="last")
    results = run_layers(config, [first, bad, last], rng=rng, max_cycles=20_000)
    assert results[0]["out"] == first.expected_beats(config)
    assert results[1]["error"] != 0 and results[1]["out"] == []
    assert results[2]["error"] == 0 and results[2]["out"] == last.expected_beats(config)


@pytest.mark.cocotb
def test_conv_core_cocotb_regression(run_bench, sim_seed):
    """The core alone, on `default`: the conv_accel top (which holds this core)
    runs the same named and random layers on every configuration."""
    from convaccel.sim.benches.conv_core_bench import RANDOM_LAYERS, named_layers
    from convaccel.sim.regression import REGRESSION_CONFIGS

    from convaccel.sim.regression import regression_seeds

    config = REGRESSION_CONFIGS["default"]
    # The named layers are the slow part: they run with the first seed only
    # (here and through the conv_accel top); random layers with every seed.
    first = sim_seed == regression_seeds()[0]
    run_dir = run_bench("conv_core", config, sim_seed,
                        testcase=None if first else "conv_core_random_layers")
    log = (run_dir / "sim.log").read_text()
    covered = sum(int(line.rsplit(":", 1)[1]) for line in log.splitlines()
                  if "layers covered:" in line)
    named = len(named_layers(config, np.random.default_rng(0))) if first else 0
    assert covered == named + RANDOM_LAYERS


def test_raster_array_inverts_raster_beats():
    from convaccel.sim.conv_driver import raster_array, raster_beats

    y = np.random.default_rng(3).integers(-128, 128, (11, 3, 5))
    beats = raster_beats(4, y)
    assert np.array_equal(raster_array(beats, 11, 3, 5, 4), y)
    with pytest.raises(ValueError, match="expected 45 beats"):
        raster_array(beats[:-1], 11, 3, 5, 4)
