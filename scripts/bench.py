"""Benchmarks: ``convaccel bench array`` measures systolic-engine utilization.

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
