"""Benchmarks: ``convaccel bench array`` measures systolic-engine utilization;
``convaccel bench layers`` runs the named CNN layers through the whole
``conv_accel`` top (on the fast compiled testbench or the cocotb player).

For each square array size it builds the engine (default preset otherwise),
streams one compute-bound problem through it under Verilator with no input
gaps and no back-pressure, and reports cycles, ideal cycles
(MACs / PEs), utilization = ideal / actual and the simulation speed
(cocotb + Verilator, Python driving every stream each cycle).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np

from ..hw.config import PRESETS


def array_problem(size: int) -> tuple[int, int, int]:
    """The compute-bound problem for a ``size x size`` array: N, K, M."""
    return 512, 8 * size, 4 * size


def bench_array(sizes, *, seed: int = 1) -> list[dict]:
    from ..sim.build import build, run  # imports cocotb

    # Every configuration first, so a bad size fails before any build.
    configs = {}
    for size in sizes:
        config = PRESETS["default"].replace(array_rows=size, array_cols=size)
        m = array_problem(size)[2]
        configs[size] = config.replace(max_out_channels=max(m, config.max_out_channels))
    results = []
    for size, config in configs.items():
        n, k, m = array_problem(size)
        built = build("systolic_engine", config)
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "bench.json"
            run(built, "systolic_engine_bench", seed=seed, testcase="engine_benchmark",
                name=f"bench-array-{size}x{size}", waves=False,
                extra_env={"CONVACCEL_BENCH_JSON": str(target),
                           "CONVACCEL_BENCH_PROBLEM": f"{n},{k},{m}"})
            figures = json.loads(target.read_text())
        figures["build_seconds"] = round(built.build_seconds, 1)
        results.append(figures)
    return results


#: Representative layers for ``convaccel bench windows`` (default preset).
WINDOW_LAYERS = {
    "3x3/1 same, C=16, 16x16": dict(channels=16, height=16, width=16, kernel=(3, 3),
                                    stride=(1, 1), dilation=(1, 1), padding=(1, 1, 1, 1)),
    "3x3/2 same, C=16, 16x16": dict(channels=16, height=16, width=16, kernel=(3, 3),
                                    stride=(2, 2), dilation=(1, 1), padding=(1, 1, 1, 1)),
    "1x1/1, C=32, 16x16": dict(channels=32, height=16, width=16, kernel=(1, 1),
                               stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)),
    "5x5/1 valid, C=6, 14x14": dict(channels=6, height=14, width=14, kernel=(5, 5),
                                    stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)),
    "3x3/1 dilation 2, C=8, 16x16": dict(channels=8, height=16, width=16, kernel=(3, 3),
                                         stride=(1, 1), dilation=(2, 2),
                                         padding=(2, 2, 2, 2)),
}


def bench_windows(*, seed: int = 1) -> list[dict]:
    from ..sim.build import build, run  # imports cocotb

    built = build("window_generator", PRESETS["default"])
    results = []
    for name, shape in WINDOW_LAYERS.items():
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "bench.json"
            run(built, "window_generator_bench", seed=seed, testcase="windows_benchmark",
                name="bench-windows", waves=False,
                extra_env={"CONVACCEL_BENCH_JSON": str(target),
                           "CONVACCEL_BENCH_SHAPE": json.dumps(shape)})
            figures = json.loads(target.read_text())
        figures["layer"] = name
        results.append(figures)
    return results


def windows_table(results: list[dict]) -> str:
    lines = ["| layer | windows | input beats | slices out | cycles | cycles / window "
             "| slices / window |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['layer']} | {r['windows']} | {r['input_beats']} | {r['slices']} | "
                     f"{r['cycles']} | {r['cycles_per_window']:.2f} | "
                     f"{r['slices_per_window']:.0f} |")
    return "\n".join(lines)


def array_table(results: list[dict]) -> str:
    lines = [
        "| array | N x K x M | cycles | ideal cycles | utilization | latency | "
        "stalls (in/out/weight/drain) | sim cycles/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        c = r["counters"]
        lines.append(
            f"| {r['array']} | {r['N']} x {r['K']} x {r['M']} | {r['cycles']} | "
            f"{r['ideal_cycles']:.0f} | {100 * r['utilization']:.2f} % | {r['latency']} | "
            f"{c['input_stall']}/{c['output_stall']}/{c['weight_stall']}/{c['drain_stall']} | "
            f"{r['sim_cycles_per_second']:.0f} |")
    return "\n".join(lines)


def run_layers(keys, config, *, seed: int = 1, waves: bool = False, name: str = "bench-layers",
               shallow_trace: bool = False, progress: bool = False,
               fmax_mhz: float | None = None, backend: str = "fast", specs: dict | None = None,
               mapping: str = "auto") -> tuple[list[dict], object, "Path"]:
    """Run named layers (:data:`~convaccel.sim.layer_suite.ALL_LAYERS`) through ``conv_accel``.

    ``specs`` adds layers of one's own (``key: spec``, e.g. from
    :func:`~convaccel.sim.layer_suite.parse_layer_spec`), run after ``keys``.

    No input gaps, no back-pressure; every output is checked bit-exactly, and
    ``busy_cycles`` against the edges counted at the ports.
    Each layer is first scaled to ``config``
    (:func:`~convaccel.sim.layer_suite.fit_spec`, the name says so) and
    checked against it: a layer that still does not fit raises
    ``ValueError`` before anything is built or run.
    One program per layer on ``backend`` (``fast``: the compiled testbench,
    ``cocotb``: the cocotb program player; same cycles, same counters), so
    ``progress`` can show a bar (tqdm, the ``bench`` extra). With ``waves``
    each layer's run writes ``<waves folder>/<name>/<name>.vcd``. With
    ``fmax_mhz`` each result also gets the layer's time and GOPS (2
    operations per MAC) at that clock. Returns the per-layer figures, the
    build and the folder of the last run's waveform.

    ``mapping``: ``auto`` runs each layer under the mapping
    :func:`~convaccel.host.fold.choose_mapping` picks for the build (taps
    folded into rows, positions into columns; the figures' ``mapping``),
    ``direct`` as it is. Utilization and the minimum traffic count the
    layer's own MACs and sizes, not the rewritten layer's.
    """
    from ..host.fold import check_mapping_choice, mapped_layer, pick_mapping, restore_output
    from ..sim.build import waves_root
    from ..sim.layer_program import run_layers as run_programs
    from ..sim.layer_suite import ALL_LAYERS, fit_spec, real_macs, spec_layer
    from ..sim.sessions import session

    check_mapping_choice(mapping)
    unknown = [key for key in keys if key not in ALL_LAYERS]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}; choose from {', '.join(ALL_LAYERS)}")
    # Scale every layer to the build (the name says so) and check it before
    # anything is built: the hardware refuses a layer that does not fit, and
    # waiting for its output would only end at the simulation's timeout.
    wanted = {**{key: ALL_LAYERS[key] for key in keys}, **(specs or {})}
    layers = {key: spec_layer(fit_spec(spec, config), config) for key, spec in wanted.items()}
    keys = list(layers)
    for layer in layers.values():
        layer.check_fits(config)
    runner = session(backend, config, shallow_trace=shallow_trace, seed=seed)
    built = runner.built
    bar = progress_bar(progress, len(keys), "layers", "layer")
    pes = config.array_rows * config.array_cols
    results, run_dir = [], None
    for key in keys:
        layer = layers[key]
        chosen = pick_mapping(layer, config, mapping)
        hw = mapped_layer(layer, chosen)
        # The rewrite is exact: the hardware's layer, put back, is the layer
        # (the run below checks the hardware against the hardware's layer).
        bits = dict(bits=config.act_width, weight_bits=config.weight_width)
        if not np.array_equal(restore_output(layer, chosen, hw.golden(**bits)),
                              layer.golden(**bits)):
            raise AssertionError(f"{layer.name}: mapping {chosen} changes the output")
        run_dir = waves_root() / name
        vcd = run_dir / f"{name}.vcd" if waves else None
        (outcome,), result = run_programs(runner, [hw], seed=seed, vcd=vcd)
        counters, macs = outcome["counters"], real_macs(layer)
        figures = {
            "key": key, "layer": layer.name, "backend": backend, "mapping": str(chosen),
            "output_beats": len(outcome["received"]),
            "pixel_beats": len(hw.pixel_beats(config)),
            "weight_beats": len(hw.weight_beats(config)),
            "cycles": counters["busy_cycles"], "counters": counters, "real_macs": macs,
            "pes": pes, "ideal_cycles": macs / pes,
            "utilization": macs / pes / counters["busy_cycles"],
            "array_issue_utilization": counters["active_cycles"] / counters["busy_cycles"],
            # The whole program's run: its register writes and reads included.
            "wall_seconds": result.wall_seconds, "simulated_edges": result.edges,
        }
        figures.update(layer_traffic(figures, config, layer))
        if fmax_mhz:
            figures["fmax_mhz"] = fmax_mhz
            figures["seconds_at_fmax"] = figures["cycles"] / (fmax_mhz * 1e6)
            figures["gops_at_fmax"] = 2 * figures["real_macs"] / figures["seconds_at_fmax"] / 1e9
            figures["peak_gops"] = 2 * figures["pes"] * fmax_mhz / 1e3
        results.append(figures)
        bar.update(1)
    bar.close()
    return results, built, run_dir


class _NoBar:
    def update(self, count):
        pass

    def close(self):
        pass


def progress_bar(enabled: bool, total: int, desc: str, unit: str):
    """A tqdm bar (the ``bench`` extra), or one that shows nothing without tqdm or when
    ``enabled`` is false."""
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(total=total, desc=desc, unit=unit)
        except ImportError:
            pass
    return _NoBar()


def layer_traffic(figures: dict, config, layer=None) -> dict:
    """Bytes through the streams (padded beats, whole bytes per lane) and ops per byte.

    With ``layer``, also the least any design must move, ``min_bytes``: the
    input, the weights and the output, once each at whole bytes per value
    (the per-channel parameters go through registers, not the streams), and
    ``traffic_ratio``, ``stream_bytes`` over that.
    """
    act_bytes = -(-config.act_width // 8)
    weight_bytes = -(-config.weight_width // 8)
    moved = (figures["pixel_beats"] * config.array_rows * act_bytes
             + figures["weight_beats"] * config.array_cols * weight_bytes
             + figures["output_beats"] * config.array_cols * act_bytes)
    traffic = {"stream_bytes": moved, "ops_per_byte": 2 * figures["real_macs"] / moved}
    if layer is not None:
        out_h, out_w = layer.out_size()
        least = (math.prod(layer.in_shape) * act_bytes + layer.w.size * weight_bytes
                 + layer.out_channels * out_h * out_w * act_bytes)
        traffic.update(min_bytes=least, traffic_ratio=moved / least)
    return traffic


def layers_table(results: list[dict]) -> str:
    timed = all("gops_at_fmax" in r for r in results)
    head = "| layer | MACs | cycles | ideal cycles | utilization | array issue | " \
           "stalls (in/out/weight/drain) |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
    if timed:
        head += f" GOPS @ {results[0]['fmax_mhz']:.1f} MHz |"
        rule += " ---: |"
    # Rows of runs before the minimum traffic was recorded have no ratio.
    traffic = all("traffic_ratio" in r for r in results)
    if traffic:
        head += " stream bytes (x minimum) |"
        rule += " ---: |"
    # Simulation speed: every simulated edge of the layer's program (register
    # writes and reads included) per wall second of its run.
    mapped = any(r.get("mapping", "direct") != "direct" for r in results)
    if mapped:
        head += " mapping |"
        rule += " --- |"
    lines = [head + " wall s | sim cycles/s |", rule + " ---: | ---: |"]
    for r in results:
        c = r["counters"]
        line = (f"| {r['layer']} | {r['real_macs']} | {r['cycles']} | {r['ideal_cycles']:.0f} | "
                f"{100 * r['utilization']:.1f} % | {100 * r['array_issue_utilization']:.1f} % | "
                f"{c['input_stall']}/{c['output_stall']}/{c['weight_stall']}/{c['drain_stall']} |")
        if timed:
            line += f" {r['gops_at_fmax']:.2f} |"
        if traffic:
            line += f" {r['stream_bytes']} ({r['traffic_ratio']:.1f}x) |"
        if mapped:
            line += f" {r.get('mapping', 'direct')} |"
        # Rows measured before the edge count was recorded have no speed.
        speed = (f"{r['simulated_edges'] / r['wall_seconds']:.0f}"
                 if r.get("simulated_edges") and r.get("wall_seconds") else "-")
        lines.append(line + f" {r['wall_seconds']:.2f} | {speed} |")
    return "\n".join(lines)


def plot_layers(results: list[dict], path: Path, config) -> Path:
    """Utilization per layer, and a roofline-style plot, into one PNG (matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, roof) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [r["key"] for r in results]
    bars.barh(names, [100 * r["utilization"] for r in results], color="tab:blue",
              label="utilization (real MACs / PEs / cycles)")
    bars.barh(names, [100 * r["array_issue_utilization"] for r in results], color="none",
              edgecolor="tab:orange", label="array issuing")
    bars.invert_yaxis()
    bars.set_xlim(0, 100)
    bars.set_xlabel("% of cycles")
    bars.set_title(f"conv_accel {config.array_rows}x{config.array_cols}: MAC utilization")
    bars.legend(loc="lower right", fontsize=8)

    # Per cycle: the array does 2 * PEs operations; the streams carry
    # rows + 2 * cols bytes (pixels in, weights in, results out).
    pes = config.array_rows * config.array_cols
    ops_peak = 2 * pes
    bytes_per_cycle = config.array_rows + 2 * config.array_cols
    intensities = [r["ops_per_byte"] for r in results]
    low, high = min(intensities) / 2, max(intensities) * 2
    xs = [low * (high / low) ** (i / 100) for i in range(101)]
    roof.plot(xs, [min(ops_peak, x * bytes_per_cycle) for x in xs], color="black",
              label=f"roof: {ops_peak} ops/cycle, {bytes_per_cycle} stream bytes/cycle")
    for r in results:
        achieved = 2 * r["real_macs"] / r["cycles"]
        roof.scatter(r["ops_per_byte"], achieved)
        roof.annotate(r["key"], (r["ops_per_byte"], achieved), fontsize=7,
                      textcoords="offset points", xytext=(4, 2))
    roof.set_xscale("log")
    roof.set_yscale("log")
    roof.set_xlabel("operations per stream byte")
    roof.set_ylabel("operations per cycle (x Fmax = ops/s)")
    roof.set_title("roofline (per cycle)")
    roof.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
