"""The fast backend: layer programs on a compiled testbench, no Python per cycle.

:func:`build_fast` compiles the ``conv_accel`` top of a build together with
the plain-Verilog program player ``sim/tb/conv_accel_tb.v`` into one
Verilator binary (``verilator --binary --timing``), cached like
:func:`convaccel.sim.build.build` in ``build/sim_cache/conv_accel_tb-<hash>/``
(the hash covers the Verilog of the top, the testbench, the lint waivers,
the trace rules, the Verilator version and the arguments). Tracing is compiled
in with the shallow trace rules of the demo's build (the top, the core and
each unit's streams, states and counters), so ``+vcd=FILE`` writes a waveform
without a rebuild.

:class:`FastSession` runs a :class:`~convaccel.sim.program.Program` on it
and returns the same :class:`~convaccel.sim.program.ProgramResult` as the
cocotb program player (:class:`convaccel.sim.sessions.CocotbSession`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..hw.config import AccelConfig
from ..hw.conv_accel import conv_accel_register_map
from ..hw.stream_format import StreamFormat
from ..hw.verilog import build_design, generate_verilog
from .build import WAIVERS, _drop_intermediates, _locked, cache_root, trace_config
from .program import Program, ProgramResult, read_results
from .toolchain import setup_verilator, verilator_version

__all__ = ["FastBuild", "FastSession", "TESTBENCH", "build_fast", "testbench_source"]

#: The program player (Verilog-2005; its parameter defaults are set per build).
TESTBENCH = Path(__file__).with_name("tb") / "conv_accel_tb.v"
TOP = "conv_accel_tb"

#: Verilator arguments of the fast build. ``--x-assign/--x-initial unique``
#: as in the cocotb builds, so both backends start from the same state. The
#: wheel's makefiles carry no C++20 coroutine flags, which ``--timing`` needs;
#: ``-O2`` on the model's hot code makes it about a quarter faster than the
#: wheel's default ``-Os``.
FAST_ARGS = ("--binary", "--timing", "--trace", "--trace-structs", "-Wno-fatal",
             "--x-assign", "unique", "--x-initial", "unique", "-O3",
             "-CFLAGS", "-std=gnu++20 -fcoroutines", "-MAKEFLAGS", "OPT_FAST=-O2")

#: Amaranth's Verilog carries no timescale; the testbench's is 1ns/1ps and
#: simulators want every module to have one when any has.
TIMESCALE_LINE = "`timescale 1ns/1ps\n"


def top_verilog(config: AccelConfig) -> str:
    """The ``conv_accel`` Verilog of ``config`` with the testbench's timescale."""
    return TIMESCALE_LINE + generate_verilog(build_design("conv_accel", config), "conv_accel")


def testbench_source(config: AccelConfig) -> str:
    """The program player with its stream and address widths set for ``config``."""
    streams = StreamFormat(config)
    values = {"PIXEL_BITS": streams.layout("pixels")["tdata_bits"],
              "WEIGHT_BITS": streams.layout("weights")["tdata_bits"],
              "OUT_BITS": streams.layout("out")["tdata_bits"],
              "ADDR_BITS": conv_accel_register_map(config).address_width}
    text = TESTBENCH.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"parameter {name} = \d+;", f"parameter {name} = {value};", text)
        assert count == 1, name
    return text


@dataclasses.dataclass(frozen=True)
class FastBuild:
    """A compiled program player for one configuration."""

    config: AccelConfig
    build_dir: Path
    binary: Path
    #: The top's Verilog as compiled (with the testbench's timescale line).
    verilog: Path
    key: str
    build_seconds: float
    cached: bool


def build_fast(config: AccelConfig, *, verbose: bool = False) -> FastBuild:
    """Compile the ``conv_accel`` top of ``config`` with the program player (cached)."""
    setup_verilator()
    verilog = top_verilog(config)
    tracing = trace_config("conv_accel", verilog, shallow_trace=True)
    bench = testbench_source(config)
    digest = hashlib.sha256()
    for part in (verilog, tracing, bench, WAIVERS.read_text(), verilator_version(),
                 json.dumps(FAST_ARGS)):
        digest.update(part.encode() + b"\0")
    key = digest.hexdigest()[:16]
    build_dir = cache_root() / f"{TOP}-{key}"
    binary = build_dir / f"V{TOP}"
    marker = build_dir / "build.ok"
    with _locked(cache_root() / f".{TOP}-{key}.lock"):
        if marker.is_file() and marker.read_text().strip() == key:
            return FastBuild(config, build_dir, binary, build_dir / "conv_accel.v", key, 0.0,
                             True)
        print(f"building the fast conv_accel testbench with Verilator (once for this "
              f"configuration; cached in {build_dir}) ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        build_dir.mkdir(parents=True, exist_ok=True)
        (build_dir / "conv_accel.v").write_text(verilog)
        (build_dir / "trace.vlt").write_text(tracing)
        (build_dir / f"{TOP}.v").write_text(bench)
        (build_dir / "config.json").write_text(config.to_json())
        command = [str(setup_verilator()), *FAST_ARGS, "--top-module", TOP, "--Mdir",
                   str(build_dir), "-o", binary.name, "--build-jobs", "2",
                   str(WAIVERS), str(build_dir / "trace.vlt"), str(build_dir / "conv_accel.v"),
                   str(build_dir / f"{TOP}.v")]
        log = build_dir / "build.log"
        with open(log, "w") as handle:
            done = subprocess.run(command, stdout=None if verbose else handle,
                                  stderr=subprocess.STDOUT if not verbose else None)
        if done.returncode != 0 or not binary.is_file():
            raise RuntimeError(f"Verilator could not build the fast testbench (exit "
                               f"{done.returncode}); log: {log}")
        _drop_intermediates(build_dir)
        marker.write_text(key + "\n")
        seconds = time.monotonic() - start
        print(f"built the fast testbench in {seconds:.0f} s", file=sys.stderr, flush=True)
        return FastBuild(config, build_dir, binary, build_dir / "conv_accel.v", key, seconds,
                         False)


class FastSession:
    """Runs layer programs on the compiled testbench of one build.

    Parameters
    ----------
    config : AccelConfig
        The build; compiled on first use (or found in the cache).
    """

    name = "fast"

    def __init__(self, config: AccelConfig):
        self.config = config
        self._built: FastBuild | None = None

    @property
    def built(self) -> FastBuild:
        if self._built is None:
            self._built = build_fast(self.config)
        return self._built

    def run_program(self, program: Program, *, folder: Path | None = None,
                    vcd: Path | None = None, timeout_seconds: float | None = None
                    ) -> ProgramResult:
        """Run ``program``; its files and the run's results go to ``folder`` (a temporary one
        by default). ``vcd``: also write a waveform of the whole run there."""
        if program.config != self.config:
            raise ValueError("the program was made for another configuration")
        binary = self.built.binary
        # A scratch folder is removed after a good run and kept after a failed one.
        run_dir = program.write_files(Path(folder) if folder else
                                      Path(tempfile.mkdtemp(prefix="convaccel-fast-")))
        command = [str(binary)]
        if vcd is not None:
            Path(vcd).parent.mkdir(parents=True, exist_ok=True)
            command.append(f"+vcd={Path(vcd).resolve()}")
        start = time.perf_counter()
        done = subprocess.run(command, cwd=run_dir, capture_output=True, text=True,
                              timeout=timeout_seconds)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"the fast testbench exited with {done.returncode} (files in "
                               f"{run_dir}): {(done.stdout + done.stderr).strip()[-2000:]}")
        result = read_results(run_dir, program)
        if folder is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        result.wall_seconds = wall
        return result
