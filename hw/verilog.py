"""Verilog generation for convaccel components.

:data:`DESIGNS` names every top a user (or the test harness) can generate; the
``convaccel generate`` command and the simulation build cache both go through
:func:`generate_verilog`, so the Verilog that is simulated is the Verilog that
is shipped.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.back import verilog
from amaranth.lib import wiring

from .config import AccelConfig
from .fpga_target import FPGATarget
from .conv_accel import ConvAccel
from .conv_core import ConvCore
from .mac_pe import MacPE
from .pool_unit import PoolUnit
from .requant_activation import RequantActivation
from .systolic_array import SystolicArray
from .systolic_engine import SystolicEngine
from .window_generator import WindowGenerator

__all__ = ["DESIGNS", "available_designs", "build_design", "generate_verilog"]

#: Generatable tops: Verilog module name -> constructor taking an AccelConfig.
DESIGNS: dict[str, Callable[[AccelConfig], wiring.Component]] = {
    "mac_pe": MacPE,
    # As in the conv engine: one beat = one systolic-engine result.
    "requant_activation": lambda config: RequantActivation(config, lanes=config.array_cols),
    "pool_unit": PoolUnit,
    "systolic_array": SystolicArray,
    "systolic_engine": SystolicEngine,
    "window_generator": WindowGenerator,
    "conv_core": ConvCore,
    "conv_accel": ConvAccel,
}


def available_designs(config: AccelConfig) -> list[str]:
    """The designs this configuration generates: all of them.

    :class:`AccelConfig` refuses every configuration one of the designs
    cannot be built for, so no design is ever dropped silently.
    """
    return list(DESIGNS)


def build_design(name: str, config: AccelConfig) -> wiring.Component:
    """Instantiate the design called ``name`` for ``config``."""
    try:
        factory = DESIGNS[name]
    except KeyError:
        raise ValueError(
            f"unknown design {name!r}; choose one of {', '.join(sorted(DESIGNS))}") from None
    return factory(config)


def generate_verilog(component: wiring.Component, name: str, family: str | None = None) -> str:
    """Convert ``component`` to Verilog with top module ``name``.

    Source-location attributes are left out: they carry absolute paths, which
    would make the text (and so the simulation cache key) differ between
    checkouts of the same design. ``family`` (e.g. ``"ecp5"``) instantiates
    that FPGA family's block RAM and multiplier primitives with their
    registers on (see :mod:`.fpga_target`); ``None`` gives portable Verilog.
    """
    platform = FPGATarget(family) if family is not None else None
    return verilog.convert(component, name=name, emit_src=False, platform=platform)
