"""Amaranth hardware of convaccel: configuration, processing element, requantizer."""

from .config import PRESETS, AccelConfig
from .mac_pe import MacPE
from .requant_activation import Activation, RequantActivation
from .systolic_array import SystolicArray
from .systolic_engine import SystolicEngine
from .window_generator import WindowGenerator
from .pool_unit import PoolUnit
from .verilog import DESIGNS, available_designs, build_design, generate_verilog

__all__ = [
    "PRESETS", "AccelConfig", "MacPE", "Activation", "RequantActivation", "SystolicArray", "SystolicEngine", "WindowGenerator",
    "PoolUnit", "DESIGNS", "available_designs", "build_design", "generate_verilog",
]
