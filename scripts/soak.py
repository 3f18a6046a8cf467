"""``convaccel soak``: many random layers on one build, every one bit-exact with exact counters.

Layers come in chains started each on the interrupt of the one before
(:func:`convaccel.sim.layer_program.add_chain`), with seeded random gaps on
both input streams, back-pressure on the output and delays on the bus. A
third of the layers are small random layers, a third have input rows and
columns no window reads (the frame must still be read to its end before
``done``), a third are drawn across the build's whole parameter space
(channels, size, kernel, stride, dilation, padding, groups, activation,
pooling, up to each maximum, within a MAC budget). Each layer is checked
against the golden model: output beats, no error bit, ``busy_cycles`` equal
to the edges counted at the ports, ``macs`` = ``P*Q*M*(C/groups)*R*S``.
Programs of up to :data:`LAYERS_PER_PROGRAM` layers run one after another on
one backend; a seed reproduces the whole soak.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["LAYERS_PER_PROGRAM", "soak_layers", "run_soak", "wide_random_layer"]

#: Layers per program (each program is one simulator run).
LAYERS_PER_PROGRAM = 100
#: Layers per chain started on interrupts.
CHAIN = 10
#: Upper bound on the MACs of a layer drawn across the whole parameter space.
MAC_BUDGET = 2_000_000


def wide_random_layer(cfg, rng, name):
    """A random valid layer with every parameter drawn up to the build's maximum."""
    from ..sim.benches.conv_core_bench import layer_from, random_activation

    while True:
        c = int(rng.integers(1, cfg.max_in_channels + 1))
        m = int(rng.integers(1, cfg.max_out_channels + 1))
        groups = int(rng.choice([g for g in range(1, c + 1) if c % g == 0 and m % g == 0]))
        r, s = (int(v) for v in rng.integers(1, cfg.max_kernel + 1, 2))
        stride = tuple(int(v) for v in rng.integers(1, cfg.max_stride + 1, 2))
        dilation = tuple(int(v) for v in rng.integers(1, cfg.max_dilation + 1, 2))
        padding = tuple(int(v) for v in rng.integers(0, cfg.max_padding + 1, 4))
        h = int(rng.integers(1, cfg.max_height + 1))
        w = int(rng.integers(1, cfg.max_width + 1))
        pool = None
        if rng.random() < 0.4:
            pool = (str(rng.choice(["max", "avg"])), int(rng.integers(1, cfg.max_pool_kernel + 1)),
                    int(rng.integers(1, cfg.max_pool_stride + 1)))
        layer = layer_from(cfg, rng, name, c, h, w, m, r, s, groups=groups, stride=stride,
                           dilation=dilation, padding=padding, pool=pool,
                           **random_activation(cfg, rng))
        if layer.misfits(cfg):
            continue    # kernel larger than the padded input, output too large, ...
        p, q = layer.conv_size()
        if p * q * m * (c // groups) * r * s > MAC_BUDGET:
            continue
        return layer


def soak_layers(cfg, rng, count: int) -> list[list]:
    """``count`` random layers in chains of up to :data:`CHAIN` (see the module docstring)."""
    from ..sim.benches.conv_accel_bench import unused_edge_layer
    from ..sim.benches.conv_core_bench import random_layer

    chains, made = [], 0
    while made < count:
        chain = []
        # Layers with unused edges share their parameters within a chain, so
        # they can be started right on the interrupt.
        m = int(rng.integers(1, min(cfg.max_out_channels, 2 * cfg.array_cols) + 1))
        params = (rng.integers(-3000, 3000, m), rng.integers(1, 1 << 12, m),
                  rng.integers(10, 18, m))
        for _ in range(min(CHAIN, count - made)):
            name = f"soak {made}"
            kind = rng.integers(3)
            if kind == 0:
                chain.append(random_layer(cfg, rng, name))
            elif kind == 1 and cfg.max_stride >= 2:
                chain.append(unused_edge_layer(cfg, rng, name, m, params))
            else:
                chain.append(wide_random_layer(cfg, rng, name))
            made += 1
        chains.append(chain)
    return chains


def run_soak(config, layers: int, *, seed: int = 1, backend: str = "fast",
             stall: float = 0.2, progress: bool = True) -> dict:
    """Run ``layers`` random layers; raises ``AssertionError`` on the first bad one.

    Returns the pass count, the simulated cycles and the wall time (with and
    without the host's preparation of the programs).
    """
    from ..sim.layer_program import add_chain, check_outcome, layer_outcome
    from ..sim.program import Program, Stalls
    from ..sim.sessions import session
    from .bench import progress_bar

    rng = np.random.default_rng([seed, 7])
    runner = session(backend, config, seed=seed)
    built = runner.built
    chains = soak_layers(config, rng, layers)
    bar = progress_bar(progress, layers, "soak", "layer")
    start = time.perf_counter()
    passed = edges = 0
    simulating = 0.0
    per_program = max(1, LAYERS_PER_PROGRAM // CHAIN)
    for first in range(0, len(chains), per_program):
        program = Program(config, bus_seed=int(rng.integers(1, 1 << 32)), bus_delay=stall)
        jobs = [job for chain in chains[first:first + per_program]
                for job in add_chain(program, chain, rng, stalls=Stalls.random(stall))]
        result = runner.run_program(program)
        simulating += result.wall_seconds
        edges += result.edges
        for job in jobs:
            check_outcome(layer_outcome(program, result, job), job.layer)
            passed += 1
        bar.update(len(jobs))
    bar.close()
    return {"layers": layers, "passed": passed, "seed": seed, "backend": backend,
            "simulated_cycles": edges, "wall_seconds": time.perf_counter() - start,
            "simulator_seconds": simulating, "build_seconds": built.build_seconds}
