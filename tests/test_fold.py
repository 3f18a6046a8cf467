"""Layer mappings (host/fold.py): each rewrite gives the golden model's output of the
layer itself, the chooser picks them where rows or columns sit idle, and the RTL runs
the rewritten layers bit-exactly."""

import dataclasses

import numpy as np
import pytest

from convaccel.host.fold import (Mapping, choose_mapping, estimated_cycles, mapped_layer,
                                 restore_output)
from convaccel.host.layer import ConvLayer
from convaccel.hw import PRESETS

DEFAULT = PRESETS["default"]


def random_layer(rng, *, pool=None, groups=1):
    """A small layer with every geometry option, zero points and per-channel parameters."""
    while True:
        c = int(rng.integers(1, 5)) * groups
        m = int(rng.integers(1, 7)) * groups
        r, s = (int(v) for v in rng.integers(1, 6, 2))
        (uh, uw), (dh, dw) = rng.integers(1, 4, 2), rng.integers(1, 3, 2)
        padding = tuple(int(v) for v in rng.integers(0, 3, 4))
        h, w = (int(v) for v in rng.integers(4, 18, 2))
        layer = ConvLayer(
            x=rng.integers(-128, 128, (c, h, w)), w=rng.integers(-128, 128, (m, c // groups, r, s)),
            bias=rng.integers(-2000, 2000, m), multiplier=rng.integers(1, 1 << 15, m),
            shift=rng.integers(8, 20, m), stride=(int(uh), int(uw)), padding=padding,
            dilation=(int(dh), int(dw)), groups=groups, activation="relu", pool=pool,
            input_zero_point=int(rng.integers(-6, 6)), output_zero_point=int(rng.integers(-6, 6)))
        try:
            layer.golden()
        except ValueError:          # kernel larger than the padded input, or pool than output
            continue
        return layer


@pytest.mark.parametrize("seed", range(6))
def test_every_mapping_gives_the_layers_own_output(seed):
    rng = np.random.default_rng([seed, 5])
    for _ in range(25):
        pool = ("max", 2, 2) if rng.random() < 0.3 else None
        layer = random_layer(rng, pool=pool)
        want = layer.golden()
        for positions in (1, 2, 3):
            for fold in (False, True):
                mapping = Mapping(positions, fold)
                if pool is not None and positions > 1:
                    continue
                hw = mapped_layer(layer, mapping)
                got = restore_output(layer, mapping, hw.golden())
                np.testing.assert_array_equal(got, want, err_msg=f"{mapping}, {layer.geometry()}")
                # The rewritten layer does the same real work, or more (zero taps).
                assert hw.real_macs() >= layer.real_macs()


def test_width_folding_by_hand():
    """C=1, a 1x2 kernel, stride 1: channel s of the folded input is the input shifted by s."""
    x = np.arange(12).reshape(1, 2, 6)
    layer = ConvLayer(x=x, w=np.array([[[[1, 10]]]]), padding=(0, 0, 1, 0))
    hw = mapped_layer(layer, Mapping(fold_width=True))
    assert hw.w.shape == (1, 2, 1, 1) and hw.w[0, :, 0, 0].tolist() == [1, 10]
    # Left padding 1 (zero point 0) makes row 0 [0, 0, 1, 2, 3, 4, 5]: 6 output
    # columns, and column j of channel s is x_padded[0, j + s].
    assert hw.x[0, 0].tolist() == [0, 0, 1, 2, 3, 4]
    assert hw.x[1, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert hw.geometry()["pad_left"] == hw.geometry()["pad_right"] == 0


def test_positions_by_hand():
    """M=1, kernel 1x1, stride 1, 2 positions: channel p holds weight at column p of a
    1x2 kernel with stride 2; the output columns are interleaved back."""
    x = np.arange(5).reshape(1, 1, 5)
    layer = ConvLayer(x=x, w=np.array([[[[3]]]]))
    hw = mapped_layer(layer, Mapping(positions=2))
    assert hw.w[:, 0, 0].tolist() == [[3, 0], [0, 3]]
    assert hw.geometry()["stride_w"] == 2 and hw.x.shape == (1, 1, 6)   # padded to 3 pairs
    out = restore_output(layer, Mapping(positions=2), hw.golden())
    np.testing.assert_array_equal(out, layer.golden())


def test_mappings_refuse_what_they_cannot_run():
    rng = np.random.default_rng(3)
    grouped = random_layer(rng, groups=2)
    with pytest.raises(ValueError, match="groups = 1"):
        mapped_layer(grouped, Mapping(fold_width=True))
    pooled = random_layer(rng, pool=("max", 2, 2))
    with pytest.raises(ValueError, match="pooling"):
        mapped_layer(pooled, Mapping(positions=2))
    assert choose_mapping(grouped, DEFAULT).direct


def shaped(c, h, w, m, k, **kwargs):
    rng = np.random.default_rng(c * 100 + m)
    return ConvLayer(x=rng.integers(-128, 128, (c, h, w)),
                     w=rng.integers(-128, 128, (m, c, k, k)), **kwargs)


def test_the_chooser_fills_idle_rows_and_columns_only():
    # C=1 first layers: fold; with few output channels and no pooling: positions too.
    assert choose_mapping(shaped(1, 32, 32, 6, 5, pool=("max", 2, 2)), DEFAULT) == Mapping(1, True)
    chosen = choose_mapping(shaped(1, 28, 28, 3, 5), DEFAULT)
    assert chosen.fold_width and chosen.positions == 2
    # Channels that fill the rows and columns: as written.
    assert choose_mapping(shaped(8, 10, 10, 8, 3), DEFAULT).direct
    assert choose_mapping(shaped(16, 10, 10, 64, 1), DEFAULT).direct
    # Every choice is no slower than direct by the model.
    for layer in (shaped(1, 28, 28, 1, 3), shaped(3, 63, 63, 64, 7, stride=(4, 4))):
        chosen = choose_mapping(layer, DEFAULT)
        assert estimated_cycles(mapped_layer(layer, chosen), DEFAULT) < estimated_cycles(
            layer, DEFAULT)


def test_the_chooser_keeps_to_the_builds_maxima():
    """tiny holds 4 channels and 12-wide images: C=1 with a 5-wide kernel cannot fold
    (5 channels), a 3-wide one can (3 channels)."""
    tiny = PRESETS["tiny"].replace(max_kernel=5)
    assert choose_mapping(shaped(1, 12, 12, 2, 5), tiny) == Mapping()
    assert choose_mapping(shaped(1, 12, 12, 2, 3), tiny).fold_width


@pytest.mark.parametrize("mapping", [Mapping(1, True), Mapping(2, False), Mapping(2, True)])
def test_mapped_layers_run_bit_exactly_on_the_fast_backend(mapping):
    """The rewritten layers on tiny's compiled RTL with random stalls: the hardware equals
    the rewritten layer's golden output beat by beat (check_outcome), which put back is
    the layer's own output."""
    from convaccel.sim.layer_program import run_layers
    from convaccel.sim.program import Stalls
    from convaccel.sim.sessions import FastSession

    tiny = PRESETS["tiny"]
    rng = np.random.default_rng(11)
    layer = ConvLayer(x=rng.integers(-128, 128, (1, 9, 9)), w=rng.integers(-128, 128, (2, 1, 3, 2)),
                      bias=rng.integers(-500, 500, 2), multiplier=rng.integers(1, 1 << 12, 2),
                      shift=rng.integers(8, 14, 2), padding=(1, 0, 1, 1), stride=(2, 1),
                      activation="relu", input_zero_point=3, output_zero_point=-2)
    hw = mapped_layer(layer, mapping)
    hw.check_fits(tiny)
    (outcome,), _ = run_layers(FastSession(tiny), [hw], stalls=Stalls.random(0.25), seed=4)
    assert outcome["error"] == 0
    np.testing.assert_array_equal(restore_output(layer, mapping, hw.golden()), layer.golden())


def test_the_runtime_maps_a_first_layer_and_counts_its_own_macs():
    """A one-step program on tiny through the fast transport: auto maps the C=1 layer,
    the output equals the golden runner's, the report counts the layer's MACs, and the
    mapped run takes fewer cycles than the direct one."""
    from convaccel.host import Accelerator
    from convaccel.host.host_ops import QuantParams
    from convaccel.host.program import Program, TensorInfo, hardware_step
    from convaccel.host.runtime import AcceleratorRunner, GoldenRunner, run_program
    from convaccel.sim.fast_transport import FastTransport
    from convaccel.sim.program import Stalls

    tiny = PRESETS["tiny"]
    rng = np.random.default_rng(12)
    layer = ConvLayer(x=None, input_shape=(1, 10, 12), w=rng.integers(-128, 128, (2, 1, 3, 3)),
                      bias=rng.integers(-500, 500, 2), multiplier=rng.integers(1, 1 << 12, 2),
                      shift=rng.integers(8, 14, 2), activation="relu", name="conv")
    step = hardware_step("conv", layer, tiny, input="x", output="y", out_shape=(1, 2, 8, 10))
    program = Program(tiny, [TensorInfo("x", [1, 1, 10, 12], "int8")],
                      [TensorInfo("y", [1, 2, 8, 10], "int8")], [step])
    program.inputs[0].quant = program.outputs[0].quant = QuantParams(1.0, 0, "int8")
    x = rng.integers(-128, 128, (2, 1, 10, 12))
    want, _ = run_program(program, {"x": x}, GoldenRunner())
    cycles = {}
    for mapping in ("auto", "direct"):
        runner = AcceleratorRunner(Accelerator(FastTransport(tiny, stalls=Stalls.random(0.2),
                                                             seed=5)), mapping=mapping)
        assert runner.mapping_for(step, x[0]).direct == (mapping == "direct")
        got, (report,) = run_program(program, {"x": x}, runner)
        np.testing.assert_array_equal(got["y"], want["y"])
        assert report.bit_exact and report.macs == 2 * dataclasses.replace(
            layer).real_macs()
        cycles[mapping] = report.cycles
    assert cycles["auto"] < cycles["direct"]
    with pytest.raises(ValueError, match="mapping"):
        AcceleratorRunner(None, mapping="fold")
