"""convaccel: a fixed-point convolution accelerator in Amaranth HDL.

The sub-packages live at the top of the repository and install as
``convaccel.hw`` (hardware), ``convaccel.golden`` (bit-exact NumPy models),
``convaccel.sim`` (Verilator/cocotb harness) and ``convaccel.scripts`` (the
``convaccel`` command). ``python -m convaccel`` runs the command.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("convaccel")
except PackageNotFoundError:    # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
