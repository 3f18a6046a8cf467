"""Every generated top is Verilator -Wall clean (bar documented waivers) and latch-free."""

import pytest

from convaccel.hw import DESIGNS, PRESETS, build_design, generate_verilog
from convaccel.sim.lint import (unregistered_outputs, verilator_lint, yosys_latches,
                                yosys_synth_check)
from convaccel.sim.regression import REGRESSION_CONFIGS


@pytest.mark.parametrize("design", list(DESIGNS))
def test_verilator_lint_is_clean(design, sim_config, tmp_path):
    config = REGRESSION_CONFIGS[sim_config]
    path = tmp_path / f"{design}.v"
    path.write_text(generate_verilog(build_design(design, config), design))
    assert verilator_lint(path, design) == []


def test_yosys_finds_no_latches(sim_config):
    """On the top, which holds every other design (a latch is named by its path)."""
    config = REGRESSION_CONFIGS[sim_config]
    assert yosys_latches(build_design("conv_accel", config), "conv_accel") == []


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_yosys_synth_of_the_top_finds_no_latch_and_no_loop(preset):
    """Generic yosys synth (to gates, without ABC) of the whole conv_accel top."""
    assert yosys_synth_check(build_design("conv_accel", PRESETS[preset]), "conv_accel") == []


def test_every_output_port_of_the_top_comes_straight_from_a_flip_flop(sim_config):
    """No logic between the top's registers and its pins (tready, tvalid, irq, the bus)."""
    top = build_design("conv_accel", REGRESSION_CONFIGS[sim_config])
    assert unregistered_outputs(top, "conv_accel") == {}


def test_the_output_port_check_names_a_port_behind_a_gate():
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Gated(wiring.Component):
        a: In(1)
        q: Out(1)
        gated: Out(1)

        def elaborate(self, platform):
            m = Module()
            held = Signal()
            m.d.sync += [held.eq(self.a), self.q.eq(self.a)]
            m.d.comb += self.gated.eq(held & self.a)
            return m

    assert unregistered_outputs(Gated(), "gated_top") == {"gated": ["$and"]}
