"""Simulation harness: Verilator toolchain, build cache, stream VIP, lint."""

from .toolchain import VerilatorMissing, setup_verilator, verilator_version

__all__ = ["VerilatorMissing", "setup_verilator", "verilator_version"]
