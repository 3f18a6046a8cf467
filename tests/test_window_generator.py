"""Window generator: Amaranth-simulator tests against the golden windows."""

import numpy as np
import pytest

from convaccel.hw import PRESETS
from convaccel.hw.window_generator import WindowGenerator
from convaccel.sim.amaranth_frames import run_frames as run_unit_frames
from convaccel.sim.frame_unit_bench import NO_ERROR, overlong_frame, truncated_frame
from convaccel.sim.window_streams import ConvShape, pixel_beats, window_beats


def run_frames(config, frames, **kwargs):
    """``frames`` of (ConvShape, input beats[, input zero point]) through a fresh window
    generator."""
    return run_unit_frames(WindowGenerator(config),
                           [(shape.port_fields(), beats, {"zero_point": zx})
                            for shape, beats, zx in ((*frame, 0)[:3] for frame in frames)],
                           **kwargs)



SHAPES = [
    ConvShape(3, 5, 6, kernel=(3, 3), padding=(1, 1, 1, 1)),
    ConvShape(2, 6, 5, kernel=(1, 1)),
    ConvShape(4, 7, 8, kernel=(2, 3), stride=(2, 3), padding=(0, 1, 2, 0)),
    ConvShape(1, 9, 9, kernel=(3, 2), dilation=(2, 3), padding=(2, 1, 0, 2)),
    ConvShape(3, 1, 7, kernel=(1, 3), padding=(0, 0, 1, 1)),
    ConvShape(2, 8, 1, kernel=(3, 1), stride=(4, 1)),
    ConvShape(1, 4, 4, kernel=(3, 3), padding=(1, 1, 1, 1), stride=(4, 4)),
    ConvShape(2, 3, 3, kernel=(3, 3)),  # kernel equal to the image
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s.kernel}-{s.stride}-{s.dilation}-{s.padding}-{s.channels}x{s.height}x{s.width}")
def test_windows_match_golden(shape):
    config = PRESETS["tiny"].replace(array_block=3)
    rng = np.random.default_rng(shape.height * 31 + shape.width)
    x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
    (result,) = run_frames(config, [(shape, pixel_beats(config, x))], rng=rng)
    assert result["error"] == NO_ERROR
    expected = window_beats(config, shape, x)
    assert len(result["out"]) == len(expected)
    for index, (want, got) in enumerate(zip(expected, result["out"])):
        assert got == want, f"beat {index}: expected {want}, got {got}"


@pytest.mark.parametrize("zero_point", [-128, -37, 5, 127])
def test_padding_reads_the_input_zero_point(zero_point):
    """Padded taps carry the input zero point; lanes beyond C stay 0 (3 channels on a
    2-lane build: the last group has one unused lane)."""
    config = PRESETS["tiny"].replace(array_block=3)
    rng = np.random.default_rng(200 + zero_point)
    for shape in (SHAPES[0], SHAPES[3], SHAPES[4], ConvShape(3, 4, 3, kernel=(3, 3),
                                                             padding=(2, 0, 1, 2))):
        x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
        (result,) = run_frames(config, [(shape, pixel_beats(config, x), zero_point)], rng=rng)
        assert result["error"] == NO_ERROR
        # window_beats gives the unused lanes 0, padded or not.
        assert result["out"] == window_beats(config, shape, x, zero_point)
        # By hand: the first slice of a top-left-padded frame is all padding.
        if shape.padding[0] and shape.padding[2]:
            real = min(config.array_rows, shape.channels)
            assert result["out"][0]["data"] == ([zero_point] * real
                                                + [0] * (config.array_rows - real))


def test_zero_point_is_sampled_at_start_per_frame():
    """Back-to-back frames with different zero points (and 0 again)."""
    config = PRESETS["tiny"].replace(array_block=4)
    rng = np.random.default_rng(41)
    frames, expected = [], []
    for shape, zx in ((SHAPES[0], -90), (SHAPES[2], 0), (SHAPES[6], 77), (SHAPES[0], 0)):
        x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
        frames.append((shape, pixel_beats(config, x), zx))
        expected.append(window_beats(config, shape, x, zx))
    results = run_frames(config, frames, rng=rng)
    assert [result["out"] for result in results] == expected
    assert all(result["error"] == NO_ERROR for result in results)


def test_back_to_back_frames_with_new_shapes():
    config = PRESETS["tiny"].replace(array_block=4)
    rng = np.random.default_rng(3)
    frames, expected = [], []
    for shape in (SHAPES[2], SHAPES[0], SHAPES[5], SHAPES[0]):
        x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
        frames.append((shape, pixel_beats(config, x)))
        expected.append(window_beats(config, shape, x))
    results = run_frames(config, frames, rng=rng)
    for result, want in zip(results, expected):
        assert result["error"] == NO_ERROR and result["out"] == want


def test_truncated_frame_sets_short_frame_and_recovers():
    config = PRESETS["tiny"]
    rng = np.random.default_rng(4)
    shape = SHAPES[0]
    x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
    beats = pixel_beats(config, x)
    cut = truncated_frame(beats)
    results = run_frames(config, [(shape, cut), (shape, beats)], rng=rng)
    assert results[0]["error"] == {"config": 0, "short_frame": 1, "long_frame": 0}
    assert results[0]["sent"] == len(cut)
    assert results[1]["error"] == NO_ERROR
    assert results[1]["out"] == window_beats(config, shape, x)


def test_too_long_frame_sets_long_frame_and_drops_the_rest():
    config = PRESETS["tiny"]
    rng = np.random.default_rng(5)
    shape = SHAPES[1]
    x = rng.integers(-128, 128, (shape.channels, shape.height, shape.width))
    beats = pixel_beats(config, x)
    long = overlong_frame(beats, extra=2)
    results = run_frames(config, [(shape, long), (shape, beats)], rng=rng)
    assert results[0]["error"] == {"config": 0, "short_frame": 0, "long_frame": 1}
    assert results[0]["sent"] == len(long)  # everything up to `last` was consumed
    assert results[1]["error"] == NO_ERROR and results[1]["out"] == window_beats(config, shape, x)


@pytest.mark.parametrize("fields", [
    {"height": 0}, {"width": 13}, {"channels": 0}, {"channels": 5}, {"kernel_h": 0},
    {"kernel_w": 4}, {"stride_h": 0}, {"stride_w": 0}, {"dilation_h": 0},
    {"kernel_h": 3, "height": 2, "pad_top": 0, "pad_bottom": 0},   # kernel taller than padded image
    {"kernel_w": 3, "dilation_w": 3, "width": 6, "pad_left": 0, "pad_right": 0},
])
def test_bad_shapes_set_config_error_without_consuming(fields):
    config = PRESETS["tiny"]
    shape = ConvShape(2, 4, 6, kernel=(3, 3), padding=(0, 0, 0, 0))
    bad = ConvShape(**{**shape.__dict__})
    port = {**bad.port_fields(), **fields}

    class Shape:  # a shape whose port fields are overridden verbatim
        def port_fields(self):
            return port

    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (2, 4, 6))
    results = run_frames(config, [(Shape(), pixel_beats(config, x)), (shape, pixel_beats(config, x))],
                         rng=rng, max_cycles=2000)
    assert results[0]["error"] == {"config": 1, "short_frame": 0, "long_frame": 0}
    assert results[0]["sent"] == 0 and results[0]["out"] == []
    assert results[1]["out"] == window_beats(config, shape, x)


def test_one_slice_per_cycle_while_emitting():
    """No stalls: the generator spends one cycle per output slice plus the row fills."""
    config = PRESETS["tiny"].replace(array_block=16)
    shape = ConvShape(4, 6, 6, kernel=(3, 3), padding=(1, 1, 1, 1))
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (4, 6, 6))
    beats = pixel_beats(config, x)
    (result,) = run_frames(config, [(shape, beats)], rng=rng, idle=0.0, stall=0.0)
    slices = len(window_beats(config, shape, x))     # 6*6 positions x 9 taps x 2 groups
    assert result["out"] == window_beats(config, shape, x)
    # Every input beat takes a cycle (no overlap with emission), every slice one
    # cycle; the rest is set-up and one turn-around cycle per output row.
    overhead = result["cycles"] - slices - len(beats)
    assert 0 < overhead <= 6 * 4 + 12, overhead


@pytest.mark.cocotb
def test_window_generator_cocotb_regression(run_bench, sim_config, sim_seed):
    from convaccel.sim.regression import REGRESSION_CONFIGS

    from convaccel.sim.benches.window_generator_bench import RANDOM_FRAMES, corner_shapes

    config = REGRESSION_CONFIGS[sim_config]
    run_dir = run_bench("window_generator", config, sim_seed)
    log = (run_dir / "sim.log").read_text()
    covered = sum(int(line.rsplit(":", 1)[1]) for line in log.splitlines()
                  if "configurations covered:" in line)
    assert covered == len(corner_shapes(config)) + RANDOM_FRAMES, covered
    print(f"window generator: {covered} configurations checked bit-exactly")
