"""``convaccel demo digits``: the quantized digits CNN, layer by layer on the RTL.

The held-out images of :mod:`convaccel.golden.digits` run through the
``conv_accel`` build under Verilator (cocotb testcase ``accel_digits``):
the host programs each layer, streams the previous layer's RTL output in
and reads the next one back; every layer of every image is compared bit
for bit with the golden network. Reports predictions, accuracy, cycles and
utilization per layer and the time per image at a given clock, and draws
the inputs, the RTL feature maps and the predictions into a PNG.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["check_digits_fit", "plot_digits", "run_digits", "summarize"]


def check_digits_fit(config) -> None:
    """Raise ``ValueError`` naming the first digits layer the build cannot run.

    The network is trained and quantized as it is, so it is never scaled:
    a build too small for it is refused before anything is built.
    """
    from ..golden.digits import LAYERS, digits_layers, load_digits_cnn
    from ..sim.conv_driver import ConvLayer

    net = load_digits_cnn()
    image = net["test_x"][0].astype(np.int64)
    # Every image has the same layer shapes; the first one stands for all.
    inputs = [image] + digits_layers(net, image)[:-1]
    for (name, kwargs), x in zip(LAYERS.items(), inputs):
        pad = kwargs.get("padding", 0)
        ConvLayer(x=x, w=net[f"{name}_w"], bias=net[f"{name}_b"], multiplier=net[f"{name}_m"],
                  shift=net[f"{name}_sh"], padding=(pad,) * 4,
                  activation=kwargs.get("activation", "none"), pool=kwargs.get("pool"),
                  name=f"digits {name}").check_fits(config)


def run_digits(count: int, config, *, seed: int = 1, progress: bool = True,
               waves: bool = False, chunk: int = 10, shallow_trace: bool = False) -> list[dict]:
    """Run the first ``count`` held-out images; one simulator run per ``chunk`` images.

    With ``waves`` the first image runs alone with a VCD (its first layer
    is at the start of the trace). ``shallow_trace`` picks the build whose
    trace shows the units but not the PEs (the LeNet demo's build, see
    :func:`convaccel.sim.build.build`). Raises ``ValueError`` before anything
    is built if the network does not fit ``config`` (:func:`check_digits_fit`).
    """
    from ..sim.build import build, run

    if count < 1:
        raise ValueError(f"the number of images must be at least 1, got {count}")
    check_digits_fit(config)
    built = build("conv_accel", config, shallow_trace=shallow_trace)
    spans, start = [], 0
    if waves:
        spans.append((0, 1, True))
        start = 1
    spans += [(first, min(chunk, count - first), False) for first in range(start, count, chunk)]
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=count, desc="images", unit="image")
        except ImportError:
            pass
    results = []
    for first, size, with_waves in spans:
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "digits.json"
            run(built, "conv_accel_bench", seed=seed, testcase="accel_digits",
                name="digits_first_image" if with_waves else "digits", waves=with_waves,
                extra_env={"CONVACCEL_DIGITS": f"{first},{size}",
                           "CONVACCEL_DIGITS_JSON": str(target)})
            results += json.loads(target.read_text())
        if bar is not None:
            bar.update(size)
    if bar is not None:
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
