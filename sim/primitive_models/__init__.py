"""Behavioural Verilog models of the FPGA primitives the ECP5 target uses."""

from pathlib import Path

__all__ = ["ECP5_MODELS"]

#: DP16KD and MULT18X18D, only in the modes hw/fpga_target.py instantiates.
ECP5_MODELS = Path(__file__).with_name("ecp5.v")
