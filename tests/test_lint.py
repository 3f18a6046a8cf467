"""Every generated top is Verilator -Wall clean (bar documented waivers) and latch-free."""

import pytest

from convaccel.hw import DESIGNS, build_design, generate_verilog
from convaccel.sim.lint import verilator_lint, yosys_latches
from convaccel.sim.regression import REGRESSION_CONFIGS


@pytest.mark.parametrize("design", list(DESIGNS))
def test_verilator_lint_is_clean(design, sim_config, tmp_path):
    config = REGRESSION_CONFIGS[sim_config]
    path = tmp_path / f"{design}.v"
    path.write_text(generate_verilog(build_design(design, config), design))
    assert verilator_lint(path, design) == []


@pytest.mark.parametrize("design", list(DESIGNS))
def test_yosys_finds_no_latches(design, sim_config):
    config = REGRESSION_CONFIGS[sim_config]
    assert yosys_latches(build_design(design, config), design) == []
