"""cocotb testbench of the ``conv_accel`` top through its AXI ports.

Everything goes through :class:`convaccel.sim.driver.ConvAccelDriver` - the
host driver users get - with random delays on the AXI4-Lite bus, random gaps
on both AXI4-Stream inputs and random back-pressure on the output: build
registers read back, the named layers of the conv core bench bit-exact
against ``golden.conv_layer``, bad configurations setting their documented
error bits (then a good layer), a reset in the middle of a layer, and the
interrupt.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from ...golden.digits import LAYERS, digits_layers, load_digits_cnn
from ...hw.conv_accel import MAGIC, VERSION
from ..conv_driver import ConvLayer, raster_array
from ..driver import ConvAccelDriver, decode_error
from ..frame_unit_bench import overlong_frame, truncated_frame
from ..layer_suite import real_macs
from ..streams import bench_rng, bench_seed, start_clock_and_reset
from . import bench_config
from .conv_core_bench import layer_from, named_layers, random_layer


async def fresh_driver(dut, salt, **kwargs) -> ConvAccelDriver:
    driver = ConvAccelDriver(dut, bench_config(), bench_rng(salt), **kwargs)
    await start_clock_and_reset(dut)
    driver.start()
    return driver


def check(result, name):
    expected, received = result["expected"], result["received"]
    for index, (want, got) in enumerate(zip(expected, received)):
        assert want == got, f"{name}: first mismatch at beat {index}: expected {want}, got {got}"
    assert len(expected) == len(received), (name, len(expected), len(received))
    assert result["error"] == 0, (name, result["errors"])


@cocotb.test()
async def accel_build_registers_read_back(dut):
    """ID, version and every build parameter, by hand from the configuration."""
    driver = await fresh_driver(dut, 1)
    cfg = driver.config
    assert (await driver.read("id"))["magic"] == MAGIC == 0x434E5641
    assert (await driver.read("version")) == {"minor": VERSION[1], "major": VERSION[0]}
    assert await driver.read("build0") == {"act_width": cfg.act_width,
                                           "weight_width": cfg.weight_width,
                                           "array_rows": cfg.array_rows,
                                           "array_cols": cfg.array_cols}
    assert await driver.read("build1") == {"max_in_channels": cfg.max_in_channels,
                                           "max_out_channels": cfg.max_out_channels}
    assert (await driver.read("build4"))["acc_width"] == cfg.acc_width


@cocotb.test()
async def accel_named_layers(dut):
    """LeNet-, VGG-, MobileNet-style, FC and overlapping-pool layers via the driver."""
    driver = await fresh_driver(dut, 2)
    for layer in named_layers(driver.config, np.random.default_rng(7)):
        result = await driver.run_layer(layer)
        check(result, layer.name)
        out = layer.golden(driver.config.act_width)
        assert result["out_size"] == {"height": out.shape[1], "width": out.shape[2]}
        counters = result["counters"]
        assert counters["busy_cycles"] >= counters["active_cycles"] > 0
        dut._log.info("%s: bit-exact, counters %s", layer.name, counters)


@cocotb.test()
async def accel_bad_configurations_then_a_good_layer(dut):
    """Each bad configuration sets its documented bit and done; the next layer runs."""
    driver = await fresh_driver(dut, 3)
    cfg = driver.config
    rng = np.random.default_rng(8)
    good = layer_from(cfg, rng, "good", 2, 5, 5, 2, 1, 1)
    cases = [
        ("exceeds_max", {"shape": {"height": cfg.max_height + 1, "width": 5}}),
        ("shape", {"kernel": {"kernel_h": min(3, cfg.max_kernel), "kernel_w": 1,
                              "stride_h": 1, "stride_w": 1, "dilation_h": 1,
                              "dilation_w": 1},
                   "shape": {"height": 1, "width": 5}}),
        ("sizes", {"channels": {"in_channels": 2, "out_channels": 0}}),
        ("groups", {"groups": {"groups": 0}}),
        ("groups", {"channels": {"in_channels": 2, "out_channels": 3}, "groups": {"groups": 2}}),
        ("exceeds_max", {"groups": {"groups": cfg.max_in_channels + 1}}),
    ]
    if cfg.max_pool_kernel >= 2:
        cases.append(("pool", {"mode": {"pool_enable": 1, "pool_kernel": 2, "pool_stride": 1},
                               "shape": {"height": 1, "width": 5}}))
    for bit, overrides in cases:
        await driver.program(good)
        for register, fields in overrides.items():
            await driver.write(register, **fields)
        await driver.write("control", start=1)
        # The exceeds_max refusal needs no data; the others give up on the
        # first error; the pixel stream may take a few beats first.
        status = await driver.wait_done(5000)
        assert not status["busy"]
        names = (await driver.read("error"))["code"]
        assert bit in decode_error(names), (bit, decode_error(names))
        dut._log.info("bad configuration %r flagged as %s", bit, decode_error(names))
    check(await driver.run_layer(good), "good layer after errors")


@cocotb.test()
async def accel_reset_in_the_middle_of_a_layer(dut):
    """rst during a layer: the accelerator comes back idle and runs the next layer."""
    driver = await fresh_driver(dut, 4)
    cfg = driver.config
    rng = np.random.default_rng(9)
    layer = layer_from(cfg, rng, "interrupted", 2, 6, 6, 3, min(3, cfg.max_kernel),
                       min(3, cfg.max_kernel))
    await driver.program(layer)
    await driver.write("control", start=1)
    pixels = layer.pixel_beats(cfg)
    feeder = cocotb.start_soon(driver.pixels.send(pixels[:len(pixels) // 2]))
    await feeder
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.s_axis_pixels_tready.value) == 0, "not idle after reset"
    await RisingEdge(dut.clk)
    assert (await driver.read("status"))["busy"] == 0
    check(await driver.run_layer(layer), "layer after reset")


@cocotb.test()
async def accel_interrupt_follows_done(dut):
    """irq = done & irq_enable; clearing done (write 1) drops it."""
    driver = await fresh_driver(dut, 5)
    cfg = driver.config
    layer = layer_from(cfg, np.random.default_rng(10), "irq", 1, 3, 3, 1, 1, 1)
    await driver.write("status", irq_enable=1)
    await driver.program(layer)
    await driver.write("control", start=1)
    receiver = cocotb.start_soon(driver.out.receive(len(layer.expected_beats(cfg))))
    weights = [{"data": beat, "last": 0} for beat in layer.weight_beats(cfg)]
    cocotb.start_soon(driver.weights.send(weights))
    await driver.pixels.send(layer.pixel_beats(cfg))
    await receiver
    for _ in range(200):
        await ReadOnly()
        if int(dut.irq.value):
            break
        await RisingEdge(dut.clk)
    else:
        raise AssertionError("irq did not rise after the layer")
    await RisingEdge(dut.clk)
    await driver.write("status", done=1, irq_enable=1)
    await ReadOnly()
    assert int(dut.irq.value) == 0, "irq still high after clearing done"


@cocotb.test()
async def accel_layer_benchmark(dut):
    """Named layers with no stalls, figures to JSON (only with CONVACCEL_BENCH_LAYERS set).

    ``CONVACCEL_BENCH_LAYERS``: JSON list of ``layer_from`` keywords (see
    :mod:`convaccel.sim.layer_suite`); ``CONVACCEL_BENCH_JSON``: output file.
    Every layer is still checked bit-exactly against the golden model.
    """
    specs = os.environ.get("CONVACCEL_BENCH_LAYERS")
    if not specs:
        dut._log.info("CONVACCEL_BENCH_LAYERS not set: layer benchmark skipped")
        return
    driver = await fresh_driver(dut, 6, idle_probability=0.0, stall_probability=0.0)
    cfg = driver.config
    pes = cfg.array_rows * cfg.array_cols
    results = []
    for spec in json.loads(specs):
        layer = layer_from(cfg, np.random.default_rng(2024), **spec)
        wall = time.perf_counter()
        result = await driver.run_layer(layer, timeout_cycles=5_000_000)
        wall = time.perf_counter() - wall
        check(result, layer.name)
        counters = result["counters"]
        macs = real_macs(layer)
        results.append({
            "layer": layer.name, "output_beats": len(result["received"]),
            "pixel_beats": len(layer.pixel_beats(cfg)), "weight_beats": len(layer.weight_beats(cfg)),
            "cycles": counters["busy_cycles"], "counters": counters, "real_macs": macs,
            "pes": pes, "ideal_cycles": macs / pes,
            "utilization": macs / pes / counters["busy_cycles"],
            "array_issue_utilization": counters["active_cycles"] / counters["busy_cycles"],
            "wall_seconds": wall,
        })
        dut._log.info("%s: %d cycles, utilization %.1f %%", layer.name,
                      counters["busy_cycles"], 100 * results[-1]["utilization"])
    with open(os.environ["CONVACCEL_BENCH_JSON"], "w") as handle:
        json.dump(results, handle, indent=2)


@cocotb.test()
async def accel_digits(dut):
    """Digits CNN images, every layer on the RTL (only with CONVACCEL_DIGITS set).

    ``CONVACCEL_DIGITS``: ``first,count`` of the held-out images;
    ``CONVACCEL_DIGITS_JSON``: output file. The host only moves each layer's
    RTL output into the next layer's input; every layer is checked
    bit-exactly against the golden network.
    """
    selection = os.environ.get("CONVACCEL_DIGITS")
    if not selection:
        dut._log.info("CONVACCEL_DIGITS not set: digits skipped")
        return
    first, count = (int(v) for v in selection.split(","))
    driver = await fresh_driver(dut, 9, idle_probability=0.0, stall_probability=0.0)
    cfg = driver.config
    net = load_digits_cnn()
    pes = cfg.array_rows * cfg.array_cols
    results = []
    for index in range(first, first + count):
        image = net["test_x"][index].astype(np.int64)
        golden = digits_layers(net, image, cfg.act_width)
        x, layers = image, []
        for (name, kwargs), want in zip(LAYERS.items(), golden):
            pad = kwargs.get("padding", 0)
            layer = ConvLayer(x=x, w=net[f"{name}_w"], bias=net[f"{name}_b"],
                              multiplier=net[f"{name}_m"], shift=net[f"{name}_sh"],
                              padding=(pad,) * 4, activation=kwargs.get("activation", "none"),
                              pool=kwargs.get("pool"), name=f"image {index} {name}")
            result = await driver.run_layer(layer)
            check(result, layer.name)
            x = raster_array(result["received"], *want.shape, cfg.array_cols)
            assert np.array_equal(x, want), layer.name
            cycles = result["counters"]["busy_cycles"]
            layers.append({"layer": name, "cycles": cycles, "real_macs": real_macs(layer),
                           "utilization": real_macs(layer) / pes / cycles,
                           "output": x.tolist()})
        logits = x[:, 0, 0]
        results.append({"index": index, "label": int(net["test_y"][index]),
                        "prediction": int(np.argmax(logits)), "layers": layers,
                        "bit_exact": True})
    with open(os.environ["CONVACCEL_DIGITS_JSON"], "w") as handle:
        json.dump(results, handle)


@cocotb.test()
async def accel_soak(dut):
    """Many random layers on one build (only with CONVACCEL_SOAK=<layers> set)."""
    count = int(os.environ.get("CONVACCEL_SOAK", "0"))
    if not count:
        dut._log.info("CONVACCEL_SOAK not set: soak skipped")
        return
    driver = await fresh_driver(dut, 7)
    rng = np.random.default_rng([bench_seed(), 7])
    for index in range(count):
        layer = random_layer(driver.config, rng, f"soak {index}")
        check(await driver.run_layer(layer), layer.name)
    dut._log.info("soak: %d of %d random layers passed bit-exactly", count, count)


@cocotb.test()
async def accel_frame_and_parameter_errors(dut):
    """short_frame, long_frame and params set their bits; the next layer runs."""
    driver = await fresh_driver(dut, 8)
    cfg = driver.config
    rng = np.random.default_rng(12)
    layer = layer_from(cfg, rng, "frames", 2, 4, 5, 2, 1, 1)
    pixels = layer.pixel_beats(cfg)
    weights = [{"data": beat, "last": 0} for beat in layer.weight_beats(cfg)]
    for frame, bit in ((truncated_frame(pixels), "short_frame"),
                       (overlong_frame(pixels), "long_frame")):
        await driver.program(layer)
        await driver.write("control", start=1)
        drain = cocotb.start_soon(driver.out.receive(10 ** 6, timeout_cycles=10 ** 6))
        feeder = cocotb.start_soon(driver.weights.send(weights, timeout_cycles=10 ** 6))
        await driver.pixels.send(frame)
        await driver.wait_done(5000)
        drain.cancel()
        feeder.cancel()
        driver.weights.valid.value = 0
        await RisingEdge(dut.clk)
        driver.out.ready.value = 0
        assert decode_error((await driver.read("error"))["code"]) == [bit]
        dut._log.info("%s flagged", bit)
    await driver.program(layer)
    await driver.write("param_channel", channel=cfg.max_out_channels)
    await driver.write("param_write", write=1)
    await driver.write("control", start=1)
    await driver.wait_done(1000)
    assert decode_error((await driver.read("error"))["code"]) == ["params"]
    check(await driver.run_layer(layer), "good layer after frame and parameter errors")
