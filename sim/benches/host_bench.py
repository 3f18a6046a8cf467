"""cocotb testbench of the host runtime on the ``conv_accel`` RTL (the cocotb backend).

Everything goes through :class:`convaccel.host.device.Accelerator` and the
:class:`~convaccel.sim.host_transport.CocotbTransport`, with seeded random
gaps on both input streams, back-pressure on the output and delays on the
bus:

* ``host_beyond_maxima``: layers 2-4x beyond the build's maxima (spatial
  stripes with halos, output-channel groups, grouped layers split by groups,
  padding sent by the host), each bit-exact with ``golden.conv_layer``;
* ``host_zero_points``: random layers with random input and output zero
  points (when the build has the ``zero_points`` register);
* ``host_program``: a network program file (``convaccel run --backend
  cocotb``), only with ``CONVACCEL_HOST_PROGRAM`` set.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cocotb
import numpy as np
from cocotb.task import bridge

from ...hw.conv_accel import conv_accel_register_map
from ...host.device import Accelerator
from ...host.fold import mapped_layer
from ...host.layer import ConvLayer, hardware_zero_points
from ...host.program import Program, hardware_step
from ...host.runtime import AcceleratorRunner, run_program
from ..host_transport import CocotbTransport
from ..streams import bench_rng, bench_seed, start_clock_and_reset
from . import bench_config
from .conv_core_bench import random_layer


async def _transport(dut, salt: int, stalls: float = 0.2) -> CocotbTransport:
    transport = CocotbTransport(dut, bench_config(), bench_rng(salt), idle_probability=stalls,
                                stall_probability=stalls)
    await start_clock_and_reset(dut)
    transport.start()
    return transport


def beyond_the_maxima(cfg, rng) -> list[ConvLayer]:
    """Layers 2-4x above the build's image size and output channels, and grouped ones."""
    k = min(3, cfg.max_kernel)
    c = min(cfg.max_in_channels, 3)
    pool = ("max", 2, 2) if cfg.max_pool_kernel >= 2 else None

    def layer(name, c, h, w, m, groups=1, **kwargs):
        return ConvLayer(
            x=rng.integers(cfg.act_min, cfg.act_max + 1, (c, h, w)),
            w=rng.integers(cfg.weight_min, cfg.weight_max + 1, (m, c // groups, k, k)),
            bias=rng.integers(-3000, 3000, m), multiplier=rng.integers(1, 1 << 12, m),
            shift=rng.integers(10, 18, m), groups=groups, name=name, **kwargs)

    layers = [
        layer("3x image size, same padding, ReLU", c, 3 * cfg.max_height, 2 * cfg.max_width, 2,
              padding=(k // 2,) * 4, activation="relu"),
        layer("2x image size, stride 2, 2x2 max-pool", c, 2 * cfg.max_height + 3,
              2 * cfg.max_width + 1, 3, stride=(min(2, cfg.max_stride),) * 2, pool=pool),
        layer("2.5x output channels", c, 5, 6, (5 * cfg.max_out_channels) // 2),
        layer("depthwise, 3x the channels", 3 * cfg.max_in_channels, 6, 5,
              3 * cfg.max_in_channels, groups=3 * cfg.max_in_channels,
              padding=(k // 2,) * 4, activation="clamp", clamp_high=cfg.act_max // 2),
        layer(f"padding {cfg.max_padding + 2} > max_padding (sent by the host)", c, 5, 5, 2,
              padding=(cfg.max_padding + 2, 0, 1, cfg.max_padding + 1)),
    ]
    return layers


def zero_point_layers(cfg, rng, count: int) -> list[ConvLayer]:
    """Random layers with random input and output zero points (and clamp bounds)."""
    layers = []
    for index in range(count):
        layer = random_layer(cfg, rng, f"zero points {index}")
        zx, zo = (int(v) for v in rng.integers(cfg.act_min, cfg.act_max + 1, 2))
        changes = {"input_zero_point": zx, "output_zero_point": zo,
                   "name": f"{layer.name}: zx {zx}, zo {zo}"}
        if layer.activation == "clamp":
            changes["clamp_high"] = int(rng.integers(cfg.act_min, cfg.act_max + 1))
        layers.append(dataclasses.replace(layer, **changes))
    return layers


def check_on_the_rtl(log, transport, layers: list[ConvLayer]) -> None:
    """Run each layer (in as many passes as it needs) on ``transport`` (any backend) and
    compare with the golden model; ``log`` says how many passes each took."""
    cfg = transport.config
    accelerator = Accelerator(transport)
    assert accelerator.config == cfg, (accelerator.config, cfg)
    runner = AcceleratorRunner(accelerator, "cocotb")
    for layer in layers:
        template = dataclasses.replace(layer, x=None, input_shape=layer.in_shape)
        step = hardware_step(layer.name, template, cfg, input="x", output="y", out_shape=())
        mapping = runner.mapping_for(step, layer.x)
        output, runs = runner.run_step(step, layer.x)
        want = layer.golden(cfg.act_width, cfg.weight_width)
        assert np.array_equal(output, want), f"{layer.name}: not bit-exact"
        # A mapped layer runs in one pass; its counter counts the rewritten
        # layer's MACs (zero taps of a widened kernel included).
        macs = ([mapped_layer(layer, mapping).real_macs()] if not mapping.direct
                else [lowered.real_macs for lowered in step.lowered])
        assert [run.counters["macs"] for run in runs] == macs, (layer.name, mapping, macs)
        log.info("%s: %d passes (%s), bit-exact", layer.name, len(runs), mapping)


@cocotb.test()
async def host_beyond_maxima(dut):
    """Layers 2-4x beyond the build's maxima through the host runtime, in passes."""
    transport = await _transport(dut, 21)
    layers = beyond_the_maxima(transport.config, np.random.default_rng([bench_seed(), 21]))
    await bridge(check_on_the_rtl)(dut._log, transport, layers)


@cocotb.test()
async def host_zero_points(dut):
    """Random layers with random zero points (needs the zero_points register)."""
    transport = await _transport(dut, 23)
    cfg = transport.config
    if not hardware_zero_points(conv_accel_register_map(cfg)):
        dut._log.info("this build has no zero_points register: zero-point layers skipped")
        return
    layers = zero_point_layers(cfg, np.random.default_rng([bench_seed(), 23]), 6)
    await bridge(check_on_the_rtl)(dut._log, transport, layers)


@cocotb.test()
async def host_program(dut):
    """A program file on input arrays (only with ``CONVACCEL_HOST_PROGRAM`` set).

    ``CONVACCEL_HOST_INPUT``: ``.npz`` of the graph input; outputs and the
    step report go to ``CONVACCEL_HOST_OUTPUT`` (``.npz``) and ``.json``;
    one JSON line per pass to ``CONVACCEL_HOST_PROGRESS``.
    """
    path = os.environ.get("CONVACCEL_HOST_PROGRAM")
    if not path:
        dut._log.info("CONVACCEL_HOST_PROGRAM not set: program run skipped")
        return
    program = Program.load(path)
    with np.load(os.environ["CONVACCEL_HOST_INPUT"]) as data:
        feeds = {key: data[key] for key in data.files}
    output = os.environ["CONVACCEL_HOST_OUTPUT"]
    transport = await _transport(dut, 22, float(os.environ.get("CONVACCEL_HOST_STALLS", "0")))
    progress = open(os.environ["CONVACCEL_HOST_PROGRESS"], "w", buffering=1)

    def on_pass(index, step, done, total):
        progress.write(json.dumps({"step": index, "done": done, "total": total}) + "\n")

    @bridge
    def host():
        accelerator = Accelerator(transport)
        accelerator.check_build(program.config)
        return run_program(program, feeds, AcceleratorRunner(accelerator, "cocotb"),
                           on_pass=on_pass)

    outputs, reports = await host()
    progress.close()
    np.savez(output, **outputs)
    pes = program.config.array_rows * program.config.array_cols
    with open(output + ".json", "w") as handle:
        json.dump([report.to_dict(pes) for report in reports], handle)
