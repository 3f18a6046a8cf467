"""``convaccel demo digits``: the quantized digits CNN, layer by layer on the RTL.

The held-out images of :mod:`convaccel.golden.digits` run through the
``conv_accel`` build under Verilator (the fast compiled testbench, or the
cocotb program player):
the host programs each layer, streams the previous layer's RTL output in
and reads the next one back; every layer of every image is compared bit
for bit with the golden network. Reports predictions, accuracy, cycles and
utilization per layer and the time per image at a given clock, and draws
the inputs, the RTL feature maps and the predictions into a PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["check_digits_fit", "digits_layer", "plot_digits", "run_digits", "summarize"]


def check_digits_fit(config) -> None:
    """Raise ``ValueError`` naming the first digits layer the build cannot run.

    The network is trained and quantized as it is, so it is never scaled:
    a build too small for it is refused before anything is built.
    """
    from ..golden.digits import LAYERS, digits_layers, load_digits_cnn

    net = load_digits_cnn()
    image = net["test_x"][0].astype(np.int64)
    # Every image has the same layer shapes; the first one stands for all.
    inputs = [image] + digits_layers(net, image)[:-1]
    for name, x in zip(LAYERS, inputs):
        digits_layer(net, name, x, f"digits {name}").check_fits(config)


def digits_layer(net, name: str, x: np.ndarray, label: str):
    """The :class:`~convaccel.host.layer.ConvLayer` of network layer ``name`` on input ``x``."""
    from ..golden.digits import LAYERS
    from ..sim.conv_driver import ConvLayer

    kwargs = LAYERS[name]
    pad = kwargs.get("padding", 0)
    return ConvLayer(x=x, w=net[f"{name}_w"], bias=net[f"{name}_b"], multiplier=net[f"{name}_m"],
                     shift=net[f"{name}_sh"], padding=(pad,) * 4,
                     activation=kwargs.get("activation", "none"), pool=kwargs.get("pool"),
                     name=label)


def run_digits(count: int, config, *, seed: int = 1, progress: bool = True,
               waves: bool = False, chunk: int | None = None, shallow_trace: bool = False,
               backend: str = "fast") -> list[dict]:
    """Run the first ``count`` held-out images, every layer on the RTL, on ``backend``.

    Images go in chunks (default 120 on ``fast``, 10 on ``cocotb``): one
    program per chunk and network layer, whose inputs are the RTL outputs of
    the layer before (the host moves them), so every layer runs back to back
    on the hardware. Every layer of every image is checked bit for bit
    against the golden network. With ``waves`` the first image also runs
    alone, its three layers in one program with a VCD (its inputs are the
    golden network's, which the check shows are the RTL's).
    ``shallow_trace`` picks the cocotb build whose trace shows the units but
    not the PEs (the fast build always traces that way). Raises
    ``ValueError`` before anything is built if the network does not fit
    ``config`` (:func:`check_digits_fit`).
    """
    from ..golden.digits import LAYERS, digits_layers, load_digits_cnn
    from ..host.fold import choose_mapping, mapped_layer, restore_output
    from ..sim.build import waves_root
    from ..sim.conv_driver import raster_array
    from ..sim.layer_program import run_layers
    from ..sim.layer_suite import real_macs
    from ..sim.sessions import session
    from .bench import progress_bar

    if count < 1:
        raise ValueError(f"the number of images must be at least 1, got {count}")
    check_digits_fit(config)
    runner = session(backend, config, shallow_trace=shallow_trace, seed=seed)
    runner.built    # build (or find) it before the progress bar starts
    chunk = chunk or (120 if backend == "fast" else 10)
    net = load_digits_cnn()
    pes = config.array_rows * config.array_cols
    bar = progress_bar(progress, count, "images", "image")

    def run(layers, **options):
        return run_layers(runner, layers, seed=seed, **options)[0]

    if waves:
        image = net["test_x"][0].astype(np.int64)
        inputs = [image] + digits_layers(net, image, config.act_width)[:-1]
        name = "digits_first_image"
        run([digits_layer(net, layer, x, f"image 0 {layer}")
             for layer, x in zip(LAYERS, inputs)], vcd=waves_root() / name / f"{name}.vcd")
    results = []
    for first in range(0, count, chunk):
        indices = range(first, min(count, first + chunk))
        images = [net["test_x"][index].astype(np.int64) for index in indices]
        golden = [digits_layers(net, image, config.act_width) for image in images]
        inputs, per_image = images, [[] for _ in indices]
        for position, name in enumerate(LAYERS):
            layers = [digits_layer(net, name, x, f"image {index} {name}")
                      for index, x in zip(indices, inputs)]
            # Each layer as the host maps it for the build (host/fold.py).
            mappings = [choose_mapping(layer, config) for layer in layers]
            hardware = [mapped_layer(layer, mapping) for layer, mapping in zip(layers, mappings)]
            outputs = []
            for outcome, layer, hw, mapping, want, rows in zip(
                    run(hardware), layers, hardware, mappings, golden, per_image):
                x = restore_output(layer, mapping, raster_array(
                    outcome["received"], hw.out_channels, *hw.out_size(), config.array_cols))
                assert np.array_equal(x, want[position]), layer.name
                cycles = outcome["counters"]["busy_cycles"]
                rows.append({"layer": name, "mapping": str(mapping), "cycles": cycles,
                             "real_macs": real_macs(layer),
                             "utilization": real_macs(layer) / pes / cycles,
                             "output": x.tolist()})
                outputs.append(x)
            inputs = outputs
        for index, x, rows in zip(indices, inputs, per_image):
            results.append({"index": index, "label": int(net["test_y"][index]),
                            "prediction": int(np.argmax(x[:, 0, 0])), "layers": rows,
                            "bit_exact": True})
        bar.update(len(indices))
    bar.close()
    return results


def summarize(results: list[dict], *, pes: int, fmax_mhz: float | None = None) -> dict:
    """Accuracy, bit-exactness and per-layer cycles / utilization (means over images)."""
    correct = sum(r["prediction"] == r["label"] for r in results)
    names = [layer["layer"] for layer in results[0]["layers"]]
    layers = []
    for position, name in enumerate(names):
        cycles = [r["layers"][position]["cycles"] for r in results]
        macs = results[0]["layers"][position]["real_macs"]
        layers.append({"layer": name, "cycles": float(np.mean(cycles)), "real_macs": macs,
                       "utilization": macs / pes / float(np.mean(cycles))})
    per_image = sum(layer["cycles"] for layer in layers)
    summary = {"images": len(results), "correct": correct, "accuracy": correct / len(results),
               "bit_exact_images": sum(r["bit_exact"] for r in results), "layers": layers,
               "cycles_per_image": per_image}
    if fmax_mhz:
        summary["fmax_mhz"] = fmax_mhz
        summary["microseconds_per_image"] = per_image / fmax_mhz
    return summary


def plot_digits(results: list[dict], path: Path, shown: int = 8) -> Path:
    """Input, RTL feature maps after each layer, logits and the prediction per image."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..golden.digits import load_digits_cnn
    from .bench import save_figure

    images = load_digits_cnn()["test_x"]
    rows = results[:shown]
    fig, axes = plt.subplots(len(rows), 4, figsize=(11, 1.9 * len(rows)),
                             gridspec_kw={"width_ratios": [1, 2.2, 2.2, 2]}, squeeze=False)

    def tiles(maps, columns):
        maps = np.asarray(maps)
        count, h, w = maps.shape
        grid = np.full((-(-count // columns) * (h + 1), columns * (w + 1)), np.nan)
        for i, fmap in enumerate(maps):
            r, c = divmod(i, columns)
            grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = fmap
        return grid

    for row, result in zip(axes, rows):
        conv1, conv2, fc = (layer["output"] for layer in result["layers"])
        row[0].imshow(images[result["index"]][0], cmap="gray_r")
        row[0].set_title(f"input (label {result['label']})", fontsize=8)
        row[1].imshow(tiles(conv1, 4), cmap="viridis")
        row[1].set_title("conv1 + ReLU + pool (RTL), 8 x 4x4", fontsize=8)
        row[2].imshow(tiles(conv2, 8), cmap="viridis")
        row[2].set_title("conv2 + ReLU + pool (RTL), 16 x 2x2", fontsize=8)
        logits = np.asarray(fc)[:, 0, 0]
        colors = ["tab:green" if d == result["prediction"] else "tab:gray" for d in range(10)]
        row[3].bar(range(10), logits, color=colors)
        ok = "correct" if result["prediction"] == result["label"] else "WRONG"
        row[3].set_title(f"logits (RTL): predicted {result['prediction']} ({ok})", fontsize=8)
        row[3].set_xticks(range(10))
        for axis in row[:3]:
            axis.set_xticks([])
            axis.set_yticks([])
    return save_figure(fig, path, dpi=100)
