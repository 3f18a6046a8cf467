"""Pooling unit: rounding constants, Amaranth-sim tests against golden pool2d."""

from fractions import Fraction
import math

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.pool_unit import PoolMode, PoolUnit, average_divider
from convaccel.sim.amaranth_frames import run_frames
from convaccel.sim.frame_unit_bench import NO_ERROR, overlong_frame, truncated_frame
from convaccel.sim.pool_streams import pool_input_beats, pool_output_beats
from convaccel.sim.regression import REGRESSION_CONFIGS


@pytest.mark.parametrize("preset", ["tiny", "default", "odd"])
def test_average_divider_is_exact_for_every_window_sum(preset):
    """Exhaustive: every sum of K*K activations, for every supported K."""
    config = REGRESSION_CONFIGS[preset]
    shift, offset, table = average_divider(config)
    for k, reciprocal in table.items():
        n = k * k
        for total in range(n * config.act_min, n * config.act_max + 1):
            want = math.floor(Fraction(total, n) + Fraction(1, 2))
            got = (((2 * total + n + 2 * n * offset) * reciprocal) >> shift) - offset
            assert got == want, (k, total, got, want)


def test_pool_unit_needs_pool_support():
    with pytest.raises(ValueError, match="pool_support=True, got False"):
        PoolUnit(PRESETS["tiny"].replace(pool_support=False))


def run_pool(config, frames, **kwargs):
    return run_frames(PoolUnit(config), frames, **kwargs)


def fields(c, h, w, kernel, stride, mode, in_block=1):
    return {"height": h, "width": w, "channels": c, "kernel": kernel, "stride": stride,
            "mode": PoolMode.AVG if mode == "avg" else PoolMode.MAX, "in_block": in_block}


CASES = [
    (3, 6, 6, 2, 2, "max", 1), (3, 6, 6, 2, 2, "avg", 1), (4, 7, 9, 3, 2, "max", 3),
    (4, 7, 9, 3, 2, "avg", 3), (1, 5, 5, 3, 1, "avg", 2), (2, 8, 7, 1, 3, "max", 4),
    (2, 3, 8, 3, 3, "avg", 8), (1, 1, 5, 1, 2, "max", 1), (2, 4, 4, 2, 3, "avg", 1),
]


@pytest.mark.parametrize("c, h, w, kernel, stride, mode, in_block", CASES)
def test_pool_matches_golden(c, h, w, kernel, stride, mode, in_block):
    config = PRESETS["tiny"]
    rng = np.random.default_rng(c * 100 + h * 10 + w + kernel)
    x = rng.integers(-128, 128, (c, h, w))
    (result,) = run_pool(config, [(fields(c, h, w, kernel, stride, mode, in_block),
                                   pool_input_beats(config, x, in_block))], rng=rng)
    assert result["error"] == NO_ERROR
    assert result["out"] == pool_output_beats(config, x, kernel, stride, mode)


def test_average_extremes_and_ties_by_hand():
    config = PRESETS["tiny"]
    # Channel 0: 2x2 windows summing to -6 (-1.5 -> -1) and 2 (0.5 -> 1);
    # channel 1: all -128 and all 127 (the range ends).
    x = np.array([[[-1, -2, 1, 0], [-1, -2, 1, 0]],
                  [[-128, -128, 127, 127], [-128, -128, 127, 127]]])
    (result,) = run_pool(config, [(fields(2, 2, 4, 2, 2, "avg"), pool_input_beats(config, x))],
                         rng=np.random.default_rng(0))
    assert [b["data"] for b in result["out"]] == [[-1, -128], [1, 127]]


def test_back_to_back_and_errors():
    config = PRESETS["tiny"]
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (3, 6, 6))
    good = pool_input_beats(config, x)
    short = truncated_frame(good, 10)
    long = overlong_frame(good)
    frames = [
        (fields(3, 6, 6, 2, 2, "max"), good),
        (fields(3, 6, 6, 3, 2, "avg"), short),
        (fields(3, 6, 6, 3, 2, "avg"), good),
        (fields(3, 6, 6, 4, 2, "max"), good),       # kernel above max_pool_kernel
        (fields(3, 6, 6, 2, 1, "max"), long),
        (fields(3, 6, 6, 3, 1, "max"), good),
    ]
    results = run_pool(config, frames, rng=rng)
    assert results[0]["out"] == pool_output_beats(config, x, 2, 2, "max")
    assert results[1]["error"] == {"config": 0, "short_frame": 1, "long_frame": 0}
    assert results[2]["out"] == pool_output_beats(config, x, 3, 2, "avg")
    assert results[3]["error"] == {"config": 1, "short_frame": 0, "long_frame": 0}
    assert results[3]["sent"] == 0
    assert results[4]["error"] == {"config": 0, "short_frame": 0, "long_frame": 1}
    assert results[4]["sent"] == len(long)
    assert results[5]["out"] == pool_output_beats(config, x, 3, 1, "max")
    assert all(r["error"] == NO_ERROR for r in (results[0], results[2], results[5]))


@pytest.mark.cocotb
def test_pool_unit_cocotb_regression(run_bench, sim_config, sim_seed):
    from convaccel.sim.benches.pool_unit_bench import RANDOM_LAYERS

    run_dir = run_bench("pool_unit", REGRESSION_CONFIGS[sim_config], sim_seed)
    log = (run_dir / "sim.log").read_text()
    covered = sum(int(line.rsplit(":", 1)[1]) for line in log.splitlines()
                  if "configurations covered:" in line)
    assert covered >= RANDOM_LAYERS + 4, covered
    print(f"pool unit: {covered} configurations checked bit-exactly")


@pytest.mark.parametrize("lanes, kernel, stride, mode", [
    (12, 3, 2, "avg"),   # 12 lanes > 9 taps: windows wait for the shared divider
    (12, 2, 2, "avg"),   # a power of two: every lane at once
    (12, 3, 1, "max"),
    (8, 3, 1, "avg"),    # 8 lanes <= 9 taps: the divider keeps up
])
def test_wide_beats_through_the_shared_divider(lanes, kernel, stride, mode):
    config = PRESETS["tiny"].replace(array_cols=lanes, max_out_channels=2 * lanes)
    rng = np.random.default_rng(lanes * 10 + kernel)
    c = lanes + 3                        # two channel groups, the second partial
    x = rng.integers(-128, 128, (c, 6, 7))
    (result,) = run_pool(config, [(fields(c, 6, 7, kernel, stride, mode),
                                   pool_input_beats(config, x))], rng=rng)
    assert result["error"] == NO_ERROR
    assert result["out"] == pool_output_beats(config, x, kernel, stride, mode)
