"""cocotb testbench of the ``conv_accel`` top through its AXI ports.

Everything goes through :class:`convaccel.sim.driver.ConvAccelDriver` - the
host driver users get - with random delays on the AXI4-Lite bus, random gaps
on both AXI4-Stream inputs and random back-pressure on the output: build
registers read back, the named layers of the conv core bench bit-exact
against ``golden.conv_layer``, bad configurations setting their documented
error bits (then a good layer), a reset in the middle of a layer, the
interrupt, and random layers with random input and output zero points.
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
from ..streams import SimTimeout, bench_rng, bench_seed, start_clock_and_reset
from . import bench_config
from .conv_core_bench import layer_from, named_layers, random_activation, random_layer


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
    assert await driver.read("build5") == {"array_block": cfg.array_block,
                                           "weight_buffer_depth": cfg.weight_buffer_depth}


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
        assert counters["macs"] == real_macs(layer), (counters["macs"], real_macs(layer))
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
        # Every register within its maximum, but padding makes P larger than max_height.
        ("conv_size", {"shape": {"height": cfg.max_height, "width": 5},
                       "padding": {"top": cfg.max_padding, "bottom": cfg.max_padding}}),
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
        names = decode_error(await driver.read_error())
        assert names == [bit], (bit, names)
        dut._log.info("bad configuration %r flagged as %s", bit, names)
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
    """Many random layers on one build (only with CONVACCEL_SOAK=<layers> set): runs of
    random layers and of layers with unread bottom rows, each started on the interrupt
    of the one before, random stalls everywhere, every layer bit-exact with exact counters."""
    count = int(os.environ.get("CONVACCEL_SOAK", "0"))
    if not count:
        dut._log.info("CONVACCEL_SOAK not set: soak skipped")
        return
    driver = await fresh_driver(dut, 7)
    cfg = driver.config
    rng = np.random.default_rng([bench_seed(), 7])
    passed = 0
    while passed < count:
        chain = []
        for index in range(min(count - passed, 10)):
            name = f"soak {passed + index}"
            if rng.random() < 0.5:
                chain.append(random_layer(cfg, rng, name))
            else:
                m = int(rng.integers(1, min(cfg.max_out_channels, 2 * cfg.array_cols) + 1))
                params = (rng.integers(-3000, 3000, m), rng.integers(1, 1 << 12, m),
                          rng.integers(10, 18, m))
                chain.append(unused_edge_layer(cfg, rng, name, m, params))
        for run in await run_started_on_interrupt(driver, chain, rng):
            check_run(run)
            passed += 1
    dut._log.info("soak: %d of %d random layers passed bit-exactly", passed, count)


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
        assert decode_error(await driver.read_error()) == [bit]
        dut._log.info("%s flagged", bit)
    await driver.program(layer)
    await driver.write("param_channel", channel=cfg.max_out_channels)
    await driver.write("param_write", write=1)
    await driver.write("control", start=1)
    await driver.wait_done(1000)
    assert decode_error(await driver.read_error()) == ["params"]
    check(await driver.run_layer(layer), "good layer after frame and parameter errors")


def unused_edge_layer(cfg, rng, name, out_channels, params) -> ConvLayer:
    """A random layer whose bottom input rows (and mostly its right columns) feed no
    output window: ``(H + pads - dilated kernel) % stride != 0``, with up to
    ``stride - 1`` rows left over, so that much of the frame comes after the
    last window's input.

    ``params`` (bias, multiplier, shift per output channel) are shared by a
    chain of such layers, so the host need not write parameters between them.
    """
    assert cfg.max_stride >= 2, "needs max_stride >= 2"
    while True:
        c = int(rng.integers(1, min(cfg.max_in_channels, 2 * cfg.array_rows) + 1))
        groups = int(rng.choice([g for g in range(1, c + 1)
                                 if c % g == 0 and out_channels % g == 0]))
        r, s = (int(v) for v in rng.integers(1, min(cfg.max_kernel, 3) + 1, 2))
        stride = tuple(int(v) for v in rng.integers(2, min(cfg.max_stride, 4) + 1, 2))
        dilation = tuple(int(v) for v in rng.integers(1, min(cfg.max_dilation, 2) + 1, 2))
        padding = tuple(int(v) for v in rng.integers(0, min(cfg.max_padding, 1) + 1, 4))
        # Input size from the output size and the rows / columns left over
        # (mostly the most the stride allows): H = (P-1)*U + dilated kernel - pads + spare.
        sizes = []
        for axis, limit in ((0, cfg.max_height), (1, cfg.max_width)):
            kernel = (r, s)[axis]
            span = (kernel - 1) * dilation[axis] + 1 - padding[2 * axis] - padding[2 * axis + 1]
            spare = stride[axis] - 1 if rng.random() < 0.7 else int(rng.integers(
                0 if axis else 1, stride[axis]))
            outputs = int(rng.integers(1, 5))
            sizes.append((outputs - 1) * stride[axis] + span + spare)
        h, w = sizes
        if not (1 <= h <= min(cfg.max_height, 16) and 1 <= w <= min(cfg.max_width, 16)):
            continue
        layer = layer_from(cfg, rng, name, c, h, w, out_channels, r, s, groups=groups,
                           stride=stride, dilation=dilation, padding=padding,
                           **random_activation(cfg, rng))
        layer.bias, layer.multiplier, layer.shift = params
        try:
            layer.golden(cfg.act_width)
        except ValueError:
            continue  # kernel larger than the padded input
        return layer


async def run_started_on_interrupt(driver, layers, rng, *, max_delay=20):
    """Start every layer on the interrupt of the one before, 0..max_delay cycles after it.

    The next layer's registers are written while its predecessor runs (they
    are sampled at start); the start write clears ``done`` and ``irq``, and
    the error bits and counters of the layer before are read after it (they
    hold until the next layer ends, which cannot happen before its pixels,
    sent after that read, arrive). Pixels, weights and outputs flow as a DMA would
    move them: each layer's stream starts when the previous layer's has been
    sent. Returns, per layer, the output beats, error bits, counters and the
    edges of the start write and of the last output handshake.
    """
    dut, cfg = driver.dut, driver.config
    await driver.write("status", irq_enable=1)
    results = []
    previous = None
    params = None
    for index, layer in enumerate(layers):
        await driver.program_layer(layer)
        if previous is not None:
            for _ in range(1000 + 50 * len(previous["pixels"]) + 20 * len(previous["weights"])):
                await ReadOnly()
                if int(dut.irq.value):
                    break
                await RisingEdge(dut.clk)
            else:
                raise SimTimeout(f"no irq after {previous['name']}")
            await RisingEdge(dut.clk)
            delay = int(rng.integers(1, max_delay + 1)) if rng.random() < 0.5 else 0
            if delay:
                await ClockCycles(dut.clk, delay)
            previous["delay"] = delay
        if layer.param_writes() != params:
            # Parameters are taken only while idle: written between the layers.
            params = layer.param_writes()
            await driver.program_params(layer)
        idle = driver.bus.idle_probability
        driver.bus.idle_probability = 0.0          # the start write goes out at once
        start = driver.bus.submit_write(driver.regmap.register("control").offset,
                                        driver.regmap.register("control").pack({"start": 1}))
        driver.bus.idle_probability = idle
        await start.done.wait()
        if previous is not None:
            await previous["tasks"]
            previous.update(await collect_layer(driver, previous))
            results.append(previous)
        pixels, weights = layer.pixel_beats(cfg), layer.weight_beats(cfg)
        expected = layer.expected_beats(cfg)
        tasks = cocotb.start_soon(stream_layer(driver, pixels, weights, len(expected)))
        previous = {"name": layer.name, "layer": layer, "start_edge": start.access.edge,
                    "pixels": pixels, "weights": weights, "expected": expected, "tasks": tasks}
    await previous["tasks"]
    await driver.wait_done(5000)
    previous.update(await collect_layer(driver, previous))
    results.append(previous)
    return results


async def stream_layer(driver, pixels, weights, outputs):
    """Send one layer's pixels and weights and receive its output (one DMA each)."""
    budget = 50 * (len(pixels) + len(weights) + outputs) + 5000
    driver.out.beats, driver.out.edges = [], []
    receiver = cocotb.start_soon(driver.out.receive(outputs, timeout_cycles=budget))
    weight_task = cocotb.start_soon(driver.weights.send(
        [{"data": beat, "last": 0} for beat in weights], timeout_cycles=budget))
    await driver.pixels.send(pixels, timeout_cycles=budget)
    await weight_task
    received = await receiver
    return {"received": list(received), "last_out_edge": driver.out.edges[-1]}


async def collect_layer(driver, run) -> dict:
    """After a layer's done: its stream results, error bits and counters."""
    streams = run["tasks"].result()
    code = await driver.read_error()
    return {**streams, "errors": decode_error(code), "counters": await driver.read_counters()}


def check_run(run):
    """One layer of :func:`run_started_on_interrupt`: output beats equal golden, no error
    bit, busy_cycles equal to the edge count at the ports, macs = P*Q*M*(C/G)*R*S."""
    layer = run["layer"]
    check({"expected": run["expected"], "received": run["received"],
           "error": 0 if not run["errors"] else 1, "errors": run["errors"]}, layer.name)
    counters = run["counters"]
    port_cycles = run["last_out_edge"] - run["start_edge"]
    assert counters["busy_cycles"] == port_cycles, (layer.name, counters["busy_cycles"],
                                                    port_cycles)
    assert counters["macs"] == real_macs(layer), (layer.name, counters["macs"], real_macs(layer))


@cocotb.test()
async def accel_next_layer_started_on_the_interrupt(dut):
    """Random layers with unread bottom rows and right columns, each started on the
    interrupt of the one before (0-20 cycles after it), random stalls everywhere:
    every layer is bit-exact, and busy_cycles and macs match the ports and P*Q*M*(C/G)*R*S."""
    driver = await fresh_driver(dut, 10)
    cfg = driver.config
    rng = np.random.default_rng([bench_seed(), 10])
    m = int(rng.integers(1, min(cfg.max_out_channels, 2 * cfg.array_cols) + 1))
    template = layer_from(cfg, rng, "parameters", 1, 1, 1, m, 1, 1)
    params = (template.bias, template.multiplier, template.shift)
    layers = [unused_edge_layer(cfg, rng, f"unused edges {index}", m, params)
              for index in range(6)]
    for run in await run_started_on_interrupt(driver, layers, rng):
        layer = run["layer"]
        check_run(run)
        dut._log.info("%s: bit-exact; the next layer started %s cycles after its irq; "
                      "counters %s", layer.name, run.get("delay", "-"), run["counters"])


@cocotb.test()
async def accel_random_zero_points(dut):
    """Random layers with random input and output zero points (every third one symmetric),
    each started on the interrupt of the one before with its registers (zero_points
    included) written while that one runs: padding reads as zx, zo is added before
    saturation, ReLU and the clamp start at zo. Every layer bit-exact with
    golden.conv_layer, busy_cycles and macs exact."""
    driver = await fresh_driver(dut, 13)
    cfg = driver.config
    rng = np.random.default_rng([bench_seed(), 13])
    layers = [random_layer(cfg, rng, f"zero points {index}", zero_points=index % 3 != 2)
              for index in range(6)]
    assert (await driver.read("zero_points")) == {"input": 0, "output": 0}   # reset value
    for run in await run_started_on_interrupt(driver, layers, rng):
        layer = run["layer"]
        check_run(run)
        dut._log.info("%s (zx %d, zo %d, %s, padding %s): bit-exact", layer.name,
                      layer.input_zero_point, layer.output_zero_point, layer.activation,
                      layer.padding)


@cocotb.test()
async def accel_cancel_ends_with_done_and_interrupt(dut):
    """cancel in the middle of a layer: done, the cancelled bit and irq; the next layer runs."""
    driver = await fresh_driver(dut, 11)
    cfg = driver.config
    layer = layer_from(cfg, np.random.default_rng(13), "cancelled", 2, 6, 6, 3,
                       min(3, cfg.max_kernel), min(3, cfg.max_kernel))
    await driver.write("status", irq_enable=1)
    await driver.program(layer)
    await driver.write("control", start=1)
    pixels = layer.pixel_beats(cfg)
    weights = [{"data": beat, "last": 0} for beat in layer.weight_beats(cfg)]
    feeder = cocotb.start_soon(driver.weights.send(weights, timeout_cycles=10 ** 5))
    await driver.pixels.send(pixels[:len(pixels) // 2])
    assert (await driver.read("status"))["busy"] == 1
    await driver.write("control", cancel=1)
    for _ in range(100):
        await ReadOnly()
        if int(dut.irq.value):
            break
        await RisingEdge(dut.clk)
    else:
        raise AssertionError("no irq after cancel")
    await RisingEdge(dut.clk)
    status = await driver.read("status")
    assert status["done"] == 1 and status["busy"] == 0, status
    assert decode_error(await driver.read_error()) == ["cancelled"]
    feeder.cancel()                       # the host drops the rest of its streams
    driver.weights.valid.value = 0
    driver.pixels.valid.value = 0
    await driver.write("status", done=1, irq_enable=1)
    # While idle, cancel does nothing: no done, no irq.
    await driver.write("control", cancel=1)
    await ClockCycles(dut.clk, 5)
    assert (await driver.read("status"))["done"] == 0
    check(await driver.run_layer(layer), "layer after cancel")


@cocotb.test()
async def accel_parameters_are_held_while_busy(dut):
    """A param_write while busy is ignored and flagged (param_busy); the running layer keeps
    its parameters; lanes of channels >= M are 0 even when their parameters are not
    (the pooling unit zeroes them)."""
    driver = await fresh_driver(dut, 12)
    cfg = driver.config
    rng = np.random.default_rng(14)
    m = max(1, cfg.array_cols - 1) if cfg.array_cols > 1 else 1
    layer = layer_from(cfg, rng, "parameters held", 2, 6, 6, m, 1, 1)
    # Channels beyond M get parameters that would give non-zero values.
    for channel in range(cfg.max_out_channels):
        await driver.write("param_channel", channel=channel)
        await driver.write("param_bias", bias=1000)
        await driver.write("param_multiplier", multiplier=1)
        await driver.write("param_shift", shift=0)
        await driver.write("param_write", write=1)
    await driver.program(layer)
    await driver.write("control", start=1)
    expected = layer.expected_beats(cfg)
    receiver = cocotb.start_soon(driver.out.receive(len(expected), timeout_cycles=10 ** 5))
    weights = [{"data": beat, "last": 0} for beat in layer.weight_beats(cfg)]
    feeder = cocotb.start_soon(driver.weights.send(weights, timeout_cycles=10 ** 5))
    pixels = layer.pixel_beats(cfg)
    await driver.pixels.send(pixels[:len(pixels) // 2])
    assert (await driver.read("status"))["busy"] == 1
    for channel in range(m):          # would change every remaining output
        await driver.write("param_channel", channel=channel)
        await driver.write("param_bias", bias=-(1 << 20) & 0xFFFF_FFFF)
        await driver.write("param_write", write=1)
    await driver.pixels.send(pixels[len(pixels) // 2:])
    await feeder
    received = await receiver
    await driver.wait_done(5000)
    for index, (want, got) in enumerate(zip(expected, received)):
        assert want == got, f"beat {index}: expected {want}, got {got}"
    assert decode_error(await driver.read_error()) == ["param_busy"]
    check(await driver.run_layer(layer), "same layer, parameters written while idle")
