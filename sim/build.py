"""Build-once Verilator runner for convaccel designs.

:func:`build` turns a named design and an :class:`~convaccel.hw.AccelConfig`
into Verilog, then into a Verilator simulation binary inside a cache folder
whose name carries a hash of everything that affects the binary: the Verilog
text (so any change to the design or the config), the lint waivers, the
Verilator and cocotb versions and the build arguments. A second request for
the same design and config finds the finished build and returns at once; a
file lock keeps parallel pytest workers from building the same thing twice.

:func:`run` runs cocotb test cases (from a module under
``convaccel.sim.benches``) on a finished build and raises
:class:`SimulationFailed` with the commands to reproduce a failure, waveforms
included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

import cocotb
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import Verilator, get_runner

from ..hw.config import AccelConfig
from ..hw.verilog import build_design, generate_verilog
from .toolchain import setup_verilator, verilator_version

__all__ = ["BuiltDesign", "SimulationFailed", "build", "run", "cache_root", "trace_config",
           "waves_root", "waves_requested", "WAIVERS", "BUILD_ARGS", "TIMESCALE"]

#: The single lint-waiver file (also applied to simulation builds).
WAIVERS = Path(__file__).with_name("lint_waivers.vlt")

#: Verilator arguments of every simulation build. Tracing is compiled in so a
#: waveform can be requested at run time without rebuilding. ``--no-trace-top``
#: leaves out the ``$rootio`` copy of the top's ports, a scope name some VCD
#: readers (pyvcd) reject; the ports stay in the top module's scope.
BUILD_ARGS = ("--trace", "--trace-structs", "--no-trace-top", "-Wall", "-Wno-fatal",
              "--x-assign", "unique", "--x-initial", "unique", "-O3")

#: The benches touch only the top's ports, so only the top module's own
#: signals are made visible to cocotb (a Verilator config rule written next
#: to each build) instead of cocotb's default ``--public-flat-rw``, which
#: publishes every signal of every module: on ``default`` that tripled the
#: generated C++ (15 MB against 6 MB), doubled the ``conv_accel`` build
#: (65 s against 36 s) and slowed its simulation by a quarter.
PUBLIC_FLAGS = ("--public-flat-rw",)


class _TopPortsVerilator(Verilator):
    """cocotb's Verilator runner without the blanket ``--public-flat-rw``."""

    def _build_command(self):
        commands = super()._build_command()
        commands[0] = [arg for arg in commands[0] if arg not in PUBLIC_FLAGS]
        return commands


def public_config(design: str) -> str:
    """Verilator control file making the top module's signals visible to cocotb."""
    return f'`verilator_config\npublic_flat_rw -module "{design}" -var "*"\n'


#: Amaranth's Verilog carries no `timescale.
TIMESCALE = ("1ns", "1ps")


class SimulationFailed(AssertionError):
    """A cocotb run reported failing test cases (or did not report at all)."""


@dataclasses.dataclass(frozen=True)
class BuiltDesign:
    """A finished Verilator build of one design for one configuration."""

    design: str
    config: AccelConfig
    build_dir: Path
    verilog: Path
    key: str
    #: Seconds spent building in this call (0 when the cache was hit).
    build_seconds: float
    cached: bool


def cache_root() -> Path:
    """Folder holding the simulation builds (``$CONVACCEL_CACHE`` or ``./build/sim_cache``)."""
    return Path(os.environ.get("CONVACCEL_CACHE", Path.cwd() / "build" / "sim_cache")).resolve()


def waves_root() -> Path:
    """Folder holding waveform dumps (``$CONVACCEL_WAVES_DIR`` or ``./build/waves``)."""
    return Path(os.environ.get("CONVACCEL_WAVES_DIR", Path.cwd() / "build" / "waves")).resolve()


def waves_requested() -> bool:
    """True when the user asked for waveforms with ``WAVES=1``."""
    return os.environ.get("WAVES", "0") not in ("", "0", "false", "no")


def _cache_key(design: str, verilog: str) -> str:
    digest = hashlib.sha256()
    for part in (design, verilog, WAIVERS.read_text(), verilator_version(),
                 cocotb.__version__, json.dumps(BUILD_ARGS), json.dumps(TIMESCALE)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Internal signals a shallow trace keeps besides the ports: stream members
#: (``o__valid``; not every one is a Verilog port), FSM states, the control
#: flags and the performance counters.
_KEPT_INTERNALS = re.compile(r"__(valid|ready|payload)$|state|^(running|busy|done|error)$|_count$")
#: Ports a shallow trace leaves out: the counter structs (each changes every
#: cycle and repeats what the top's ``*_count`` registers show).
_DROPPED_PORTS = {"counters"}


def _declarations(verilog: str):
    """``(line number, module, kind, name)`` of every port, wire and reg declaration."""
    module = None
    for number, text in enumerate(verilog.splitlines(), start=1):
        words = text.split()
        if not words:
            continue
        if words[0] == "module":
            module = words[1].lstrip("\\").split("(")[0]
        elif words[0] in ("input", "output", "inout", "wire", "reg") and module:
            name = [word for word in words[1:] if not word.startswith("[")
                    and word != "signed"][0].rstrip(";")
            yield number, module, words[0], name.lstrip("\\")


def trace_config(design: str, verilog: str, *, shallow_trace: bool = False) -> str:
    """Verilator control file that shapes the trace of ``design``.

    Amaranth's anonymous nets (``$12``: intermediate expressions) are never
    traced: they carry no name a reader could use, and a reference starting
    with ``$`` breaks some VCD readers. With ``shallow_trace`` (for a
    ``conv_accel`` top) the trace keeps, for the top, the core and each unit
    of the core, the ports, FSM states and performance counters: every
    stream and handshake, not the datapath inside (the systolic array, its
    PEs and buffers are left out), so the waveform of a whole layer stays
    small.
    """
    declarations = list(_declarations(verilog))
    ports = {(module, name) for _, module, kind, name in declarations
             if kind in ("input", "output", "inout")}
    # Wires named after a port connect it to its neighbour (``i__ready$29``):
    # they are the same signal, and tracing them off would drop the port too.
    port_names = {name.split("$")[0] for module, name in ports if module.count(".") <= 2}
    off = []
    for number, module, kind, name in declarations:
        if name.startswith("$") and kind in ("wire", "reg"):
            off.append(number)
        elif shallow_trace and module.count(".") <= 2:
            base = name.split("$")[0]
            if "." in name or "[" in name or base in _DROPPED_PORTS and module != design:
                off.append(number)      # views of a port's fields, the counter structs
            elif ((module, name) not in ports and base not in port_names
                  and not _KEPT_INTERNALS.search(name)):
                off.append(number)      # the unit's own datapath
    rules = ["`verilator_config"]
    start = previous = None
    for number in off + [None]:
        if number is not None and previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            span = f"{start}" if start == previous else f"{start}-{previous}"
            rules.append(f'tracing_off -file "*/{design}.v" -lines {span}')
        start = previous = number
    if shallow_trace:
        # Modules are named by their place in the hierarchy; leave out every
        # instance below the units (the engine's array and FIFO).
        for _, module, _, _ in declarations:
            if module.count(".") == 3:
                rule = f'tracing_off -scope "{module}"'
                if rule not in rules:
                    rules.append(rule)
    return "\n".join(rules) + "\n"


def build(design: str, config: AccelConfig, *, verbose: bool = False,
          component=None, shallow_trace: bool = False) -> BuiltDesign:
    """Generate and Verilate ``design`` for ``config``, reusing a cached build.

    Parameters
    ----------
    design : str
        A name from :data:`convaccel.hw.DESIGNS`; also the Verilog top name.
    config : AccelConfig
        Generate-time parameters.
    verbose : bool
        Show the Verilator and make output.
    component : wiring.Component, optional
        Build this component (Verilog top named ``design``) instead of the
        registered design of that name; for test-only tops.
    shallow_trace : bool
        For ``conv_accel``: trace the top, the core and each unit (their
        streams, counters and FSM states) but not the systolic array inside
        the engine: a separate cached build whose waveforms stay readable.

    Returns
    -------
    BuiltDesign
    """
    setup_verilator()
    if component is None:
        component = build_design(design, config)
    verilog = generate_verilog(component, design)
    tracing = trace_config(design, verilog, shallow_trace=shallow_trace)
    key = _cache_key(design, verilog + tracing + public_config(design))
    build_dir = cache_root() / f"{design}-{key}"
    source = build_dir / f"{design}.v"
    marker = build_dir / "build.ok"
    with _locked(cache_root() / f".{design}-{key}.lock"):
        if marker.is_file() and marker.read_text().strip() == key:
            return BuiltDesign(design, config, build_dir, source, key, 0.0, True)
        # The first build of a design and configuration takes from seconds
        # (a unit on tiny) to minutes (conv_accel on large): say so.
        print(f"building {design} with Verilator (once for this design and configuration; "
              f"cached in {build_dir}) ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        build_dir.mkdir(parents=True, exist_ok=True)
        source.write_text(verilog)
        (build_dir / "trace.vlt").write_text(tracing)
        (build_dir / "public.vlt").write_text(public_config(design))
        (build_dir / "config.json").write_text(config.to_json())
        runner = _TopPortsVerilator()
        runner.build(
            sources=[WAIVERS, build_dir / "trace.vlt", build_dir / "public.vlt", source],
            hdl_toplevel=design,
            build_dir=build_dir,
            build_args=list(BUILD_ARGS),
            timescale=TIMESCALE,
            waves=True,
            always=True,
            verbose=verbose,
            log_file=None if verbose else build_dir / "build.log",
        )
        _drop_intermediates(build_dir)
        marker.write_text(key + "\n")
        seconds = time.monotonic() - start
        print(f"built {design} in {seconds:.0f} s", file=sys.stderr, flush=True)
        return BuiltDesign(design, config, build_dir, source, key, seconds, False)


#: Build products only a rebuild in place would need (a cached build never
#: is): precompiled headers (about 140 MB per design), objects, archives.
_INTERMEDIATES = ("*.gch", "*.o", "*.a", "*.d")


def _drop_intermediates(build_dir: Path) -> None:
    """Keep the simulation binary and the sources; remove what only make needs."""
    for pattern in _INTERMEDIATES:
        for path in build_dir.glob(pattern):
            path.unlink()


def run(built: BuiltDesign, bench: str, *, testcase: str | None = None, seed: int = 1,
        waves: bool | None = None, name: str | None = None, extra_env: dict | None = None,
        pytest_id: str | None = None) -> Path:
    """Run cocotb test cases of ``convaccel.sim.benches.<bench>`` on ``built``.

    Parameters
    ----------
    built : BuiltDesign
        From :func:`build`.
    bench : str
        Module name under ``convaccel.sim.benches``.
    testcase : str, optional
        Run only this cocotb test case.
    seed : int
        Random seed (``cocotb.RANDOM_SEED`` in the bench); printed by cocotb
        and repeated in a failure message.
    waves : bool, optional
        Dump a VCD to ``waves_root()/<name>/<name>.vcd``. Defaults to
        :func:`waves_requested` (``WAVES=1``).
    name : str, optional
        Name of the run's output folder; defaults to bench, testcase and seed.
    extra_env : dict, optional
        More environment variables for the simulation.
    pytest_id : str, optional
        The pytest node id, quoted in the failure message for reruns.

    Returns
    -------
    Path
        The run's folder (results.xml, sim.log, waveform if requested).

    Raises
    ------
    SimulationFailed
        If any test case failed or the simulator did not produce results.
    """
    setup_verilator()
    waves = waves_requested() if waves is None else waves
    name = name or "-".join(filter(None, [built.design, bench, testcase, f"seed{seed}"]))
    run_dir = (waves_root() if waves else cache_root() / "runs") / name
    run_dir.mkdir(parents=True, exist_ok=True)
    wave_file = run_dir / f"{name}.vcd"
    env = {"CONVACCEL_CONFIG": built.config.to_json(), "CONVACCEL_SEED": str(seed)}
    env.update(extra_env or {})
    results = run_dir / "results.xml"
    results.unlink(missing_ok=True)
    runner = get_runner("verilator")
    try:
        runner.test(
            test_module=f"convaccel.sim.benches.{bench}",
            hdl_toplevel=built.design,
            hdl_toplevel_lang="verilog",
            build_dir=built.build_dir,
            test_dir=run_dir,
            testcase=testcase,
            seed=seed,
            waves=waves,
            test_args=["--trace-file", str(wave_file)] if waves else [],
            extra_env=env,
            results_xml=str(results),
            timescale=TIMESCALE,
            log_file=run_dir / "sim.log",
        )
    except SystemExit:
        pass  # the runner exits on failing tests; results.xml says which
    rerun = (f"WAVES=1 pytest {shlex.quote(pytest_id)}" if pytest_id else
             f"WAVES=1 (same command) with seed {seed}")
    if not results.is_file():
        raise SimulationFailed(
            f"{built.design}/{bench}: the simulator produced no results (crash or timeout?); "
            f"log: {run_dir / 'sim.log'}\nrerun with waves: {rerun}")
    total, failed = get_results(results)
    if failed or total == 0:
        log = (run_dir / "sim.log").read_text(errors="replace")
        tail = "\n".join(log.splitlines()[-60:])
        raise SimulationFailed(
            f"{built.design}/{bench}: {failed} of {total} cocotb test(s) failed "
            f"(seed {seed}, build {built.build_dir}).\n"
            f"Rerun just this with waves: {rerun}\n"
            f"(the waveform goes to {waves_root() / name / (name + '.vcd')})\n"
            f"--- last lines of {run_dir / 'sim.log'} ---\n{tail}")
    return run_dir
