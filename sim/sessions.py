"""Backends that run layer programs: ``fast`` (compiled testbench) and ``cocotb``.

Both take a :class:`~convaccel.sim.program.Program` and return a
:class:`~convaccel.sim.program.ProgramResult` from the same result files,
so the host code above them (layer lowering, golden checks, the demos and
benchmarks) does not know which one ran. :func:`session` picks one by name.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from unittest import mock

from ..hw.config import AccelConfig
from .fast import FastSession
from .program import Program, ProgramResult, read_results

__all__ = ["BACKENDS", "CocotbSession", "FastSession", "session"]

#: Backend names, the default first.
BACKENDS = ("fast", "cocotb")


class CocotbSession:
    """Runs layer programs with the cocotb program player on a cached Verilator build.

    Parameters
    ----------
    config : AccelConfig
        The build.
    shallow_trace : bool
        Use the ``conv_accel`` build whose trace leaves out the PEs (the
        demo's build; see :func:`convaccel.sim.build.build`).
    seed : int
        cocotb's random seed (the program's own seeds set every stall).
    """

    name = "cocotb"

    def __init__(self, config: AccelConfig, *, shallow_trace: bool = True, seed: int = 1):
        self.config = config
        self.shallow_trace = shallow_trace
        self.seed = seed
        self._built = None

    @property
    def built(self):
        if self._built is None:
            from .build import build

            self._built = build("conv_accel", self.config, shallow_trace=self.shallow_trace)
        return self._built

    def run_program(self, program: Program, *, folder: Path | None = None,
                    vcd: Path | None = None, name: str = "program") -> ProgramResult:
        """Run ``program``; ``vcd``: write a waveform there (named after its folder)."""
        from .build import run

        if program.config != self.config:
            raise ValueError("the program was made for another configuration")
        built = self.built
        with tempfile.TemporaryDirectory(prefix="convaccel-cocotb-") as scratch:
            run_dir = program.write_files(Path(folder) if folder else Path(scratch))
            env = {"CONVACCEL_PROGRAM_DIR": str(run_dir)}
            start = time.perf_counter()
            if vcd is not None:
                # build.run writes <waves folder>/<name>/<name>.vcd.
                vcd = Path(vcd).resolve()
                with mock.patch.dict(os.environ, {"CONVACCEL_WAVES_DIR": str(vcd.parent.parent)}):
                    run(built, "program_bench", testcase="program_player", seed=self.seed,
                        waves=True, name=vcd.stem, extra_env=env)
            else:
                run(built, "program_bench", testcase="program_player", seed=self.seed,
                    waves=False, name=name, extra_env=env)
            wall = time.perf_counter() - start
            result = read_results(run_dir, program)
        result.wall_seconds = wall
        return result


def session(backend: str, config: AccelConfig, *, shallow_trace: bool = True, seed: int = 1):
    """A :class:`FastSession` or :class:`CocotbSession` for ``config``.

    ``shallow_trace`` and ``seed`` are the cocotb session's (the fast build
    always traces shallow; its stalls come from the programs' seeds).
    """
    if backend == "fast":
        return FastSession(config)
    if backend == "cocotb":
        return CocotbSession(config, shallow_trace=shallow_trace, seed=seed)
    raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
