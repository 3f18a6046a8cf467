"""cocotb testbenches, one module per hardware block (``<block>_bench``).

Each module holds a testbench class for its DUT and ``@cocotb.test`` cases;
:func:`convaccel.sim.build.run` runs them on a cached Verilator build. The
build's configuration reaches the bench as JSON in ``CONVACCEL_CONFIG``.
"""

import os

from ...hw.config import AccelConfig

__all__ = ["bench_config"]


def bench_config() -> AccelConfig:
    """The configuration the simulated design was generated with."""
    try:
        return AccelConfig.from_json(os.environ["CONVACCEL_CONFIG"])
    except KeyError:
        raise RuntimeError(
            "CONVACCEL_CONFIG is not set: run benches through convaccel.sim.build.run()") from None
