"""Benchmarks: ``convaccel bench array`` measures systolic-engine utilization;
``convaccel bench layers`` runs the named CNN layers through the whole
``conv_accel`` top.

For each square array size it builds the engine (default preset otherwise),
streams one compute-bound problem through it under Verilator with no input
gaps and no back-pressure, and reports cycles, ideal cycles
(MACs / PEs), utilization = ideal / actual and the simulation speed
(cocotb + Verilator, Python driving every stream each cycle).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..hw.config import PRESETS


def array_problem(size: int) -> tuple[int, int, int]:
    """The compute-bound problem for a ``size x size`` array: N, K, M."""
    return 512, 8 * size, 4 * size


def bench_array(sizes, *, seed: int = 1) -> list[dict]:
    from ..sim.build import build, run  # imports cocotb

    results = []
    for size in sizes:
        config = PRESETS["default"].replace(array_rows=size, array_cols=size)
        n, k, m = array_problem(size)
        if m > config.max_out_channels:
            config = config.replace(max_out_channels=m)
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
               shallow_trace: bool = False) -> tuple[list[dict], object, "Path"]:
    """Run named layers (:data:`~convaccel.sim.layer_suite.BENCH_LAYERS`) through ``conv_accel``.

    No input gaps, no back-pressure; every output is checked bit-exactly.
    Returns the per-layer figures, the build and the run folder.
    """
    from ..sim.build import build, run  # imports cocotb
    from ..sim.layer_suite import BENCH_LAYERS

    unknown = [key for key in keys if key not in BENCH_LAYERS]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}; choose from {', '.join(BENCH_LAYERS)}")
    built = build("conv_accel", config, shallow_trace=shallow_trace)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "bench.json"
        run_dir = run(built, "conv_accel_bench", seed=seed, testcase="accel_layer_benchmark",
                      name=name, waves=waves,
                      extra_env={"CONVACCEL_BENCH_JSON": str(target),
                                 "CONVACCEL_BENCH_LAYERS": json.dumps(
                                     [BENCH_LAYERS[key] for key in keys])})
        results = json.loads(target.read_text())
    for key, figures in zip(keys, results):
        figures["key"] = key
    return results, built, run_dir


def layers_table(results: list[dict]) -> str:
    lines = ["| layer | MACs | cycles | ideal cycles | utilization | array issue | "
             "stalls (in/out/weight/drain) | wall s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in results:
        c = r["counters"]
        lines.append(
            f"| {r['layer']} | {r['real_macs']} | {r['cycles']} | {r['ideal_cycles']:.0f} | "
            f"{100 * r['utilization']:.1f} % | {100 * r['array_issue_utilization']:.1f} % | "
            f"{c['input_stall']}/{c['output_stall']}/{c['weight_stall']}/{c['drain_stall']} | "
            f"{r['wall_seconds']:.1f} |")
    return "\n".join(lines)
