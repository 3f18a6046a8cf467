"""convaccel synth: the port fold, and a smoke run of both FPGA flows on a small design."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from convaccel.hw import PRESETS
from convaccel.scripts.synth import FAMILIES, PortFold, soft_multipliers, synth_table, synthesize


class Adder(wiring.Component):
    """y = a + b, combinational: the fold's registers are all the timing there is."""

    def __init__(self):
        super().__init__({"a": In(3), "b": In(2), "y": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a + self.b)
        return m


def test_port_fold_shifts_inputs_in_and_xors_the_outputs():
    inner = Adder()
    fold = PortFold(inner)
    assert fold.fold_ffs == 3 + 2 + 1
    bits = np.random.default_rng(1).integers(0, 2, 40).tolist()
    seen = []

    async def testbench(ctx):
        history = []
        for bit in bits:
            ctx.set(fold.din, bit)
            await ctx.tick()
            history.insert(0, bit)
            chain = (history + [0] * 5)[:5]        # chain[0] is the newest bit
            a = chain[0] | chain[1] << 1 | chain[2] << 2
            b = chain[3] | chain[4] << 1
            seen.append((ctx.get(inner.a), ctx.get(inner.b), a, b, ctx.get(fold.dout),
                         bin(a + b).count("1") % 2))

    sim = Simulator(fold)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for index, (got_a, got_b, a, b, _, _) in enumerate(seen):
        assert (got_a, got_b) == (a, b), index
    # dout is the XOR of the outputs one cycle earlier.
    assert [row[4] for row in seen[1:]] == [row[5] for row in seen[:-1]]


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown family 'xilinx'"):
        synthesize("mac_pe", PRESETS["tiny"], "xilinx", out_dir=tmp_path)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_synth_smoke_on_a_small_design(family, tmp_path):
    """Both tools run; the PE's multiplier lands in a DSP block; Fmax is reported."""
    figures = synthesize("mac_pe", PRESETS["tiny"], family, out_dir=tmp_path)
    assert "pnr_error" not in figures, figures.get("pnr_error")
    for field in ("luts", "ffs", "carry", "dsp", "bram", "fmax_mhz", "tools", "utilization",
                  "synth_seconds", "pnr_seconds"):
        assert field in figures, field
    assert figures["dsp"] == 1          # one 8x8 multiply per PE
    assert figures["ffs"] > 0 and figures["fmax_mhz"] > 0
    assert figures["tools"]["yosys"].startswith("Yosys")
    top = "mac_pe_folded" if family == "ice40" else "mac_pe"
    assert (tmp_path / f"{top}-{family}-2x2-8x8b-{PRESETS['tiny'].digest()[:8]}-seed1.json").exists()
    assert f"| mac_pe | 2x2 | 8 x 8 | {family}" in synth_table([figures])


def test_results_replace_only_the_marked_readme_section(tmp_path):
    from convaccel.scripts.results import BEGIN, END, splice_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{BEGIN}\nold table\n{END}\n\n## after\n")
    splice_readme(readme, "| new | table |")
    assert readme.read_text() == f"# title\n\nintro\n\n{BEGIN}\n| new | table |\n{END}\n\n## after\n"
    with pytest.raises(ValueError, match="no results markers"):
        splice_readme(_without_markers(tmp_path), "x")


def _without_markers(tmp_path):
    path = tmp_path / "plain.md"
    path.write_text("# nothing to replace\n")
    return path


def test_the_readme_has_the_results_markers():
    from pathlib import Path

    from convaccel.scripts.results import BEGIN, END

    text = (Path(__file__).parent.parent / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_a_failed_synthesis_is_a_row_of_the_table():
    row = {"design": "conv_accel", "family": "ecp5", "device": "ecp5", "array": "2x2",
           "act_width": 8, "weight_width": 8, "fold_ffs": 0, "synth_error": "yosys: ERROR",
           **{field: "-" for field in ("luts", "ffs", "carry", "dsp", "bram", "synth_seconds",
                                       "pnr_seconds")}}
    assert "| synthesis failed |" in synth_table([row])


class SmallProduct(wiring.Component):
    """A 3x3-bit product (yosys maps even this one to a MULT18X18D)."""

    def __init__(self):
        super().__init__({"a": In(3), "b": In(3), "y": Out(6)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a * self.b)
        return m


def test_soft_multiplier_check_finds_a_product_left_in_luts():
    assert soft_multipliers(SmallProduct(), "small_product") == []
    assert len(soft_multipliers(SmallProduct(), "small_product", dsp=False)) == 1
    assert soft_multipliers(Adder(), "adder", dsp=False) == []


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_every_multiplier_of_the_top_is_in_a_dsp_block(preset):
    from convaccel.hw import build_design

    assert soft_multipliers(build_design("conv_accel", PRESETS[preset]), "conv_accel") == []


def test_results_say_when_and_on_what_machine_they_were_measured(tmp_path):
    import json
    import shutil
    from pathlib import Path

    from convaccel.scripts.results import machine_description, render_results

    published = Path(__file__).parent.parent / "docs" / "results"
    for name in ("synth", "scaling_arrays", "scaling_widths", "array", "layers"):
        shutil.copy(published / f"{name}.json", tmp_path / f"{name}.json")
    (tmp_path / "meta.json").write_text(json.dumps(
        {"minutes": 23.0, "date": "2026-12-01", "machine": "2 cores, 24 GiB, AMD EPYC"}))
    markdown = render_results(tmp_path)
    assert "(23 minutes on 2 cores, 24 GiB, AMD EPYC on 2026-12-01; tables and plots)" in markdown
    # Without a baseline file the before/after table says so instead of failing.
    assert "(no baseline_layers.json)" in markdown
    assert machine_description().split(" cores")[0].isdigit()


def test_seed_summary_and_before_after_tables_by_hand(tmp_path):
    import json

    from convaccel.scripts.results import _before_after
    from convaccel.scripts.synth import seed_summary

    rows = [{"seed": 2, "fmax_mhz": 130.0, "critical_path": "path two"},
            {"seed": 1, "fmax_mhz": 126.5, "critical_path": "path one"},
            {"seed": 3, "fmax_mhz": 141.2, "critical_path": "path three"}]
    text = seed_summary(rows)
    assert "seed 1: 126.5, seed 2: 130.0, seed 3: 141.2 MHz" in text
    assert "min 126.5, median 130.0, max 141.2 MHz" in text and "path one" in text
    assert "path two" not in text
    before = [{"key": "a", "layer": "A", "cycles": 1000, "gops_at_fmax": 1.0, "fmax_mhz": 30.5}]
    (tmp_path / "baseline_layers.json").write_text(json.dumps(before))
    now = [{"key": "a", "layer": "A", "cycles": 1015, "gops_at_fmax": 4.0, "fmax_mhz": 125.0}]
    table = _before_after(tmp_path, now)
    assert "| A | 1000 | 1015 | +1.5 % | 1.00 (30.5) | 4.00 (125.0) |" in table
    # A cycle reference counted like today's replaces the baseline's cycles.
    (tmp_path / "baseline_cycles.json").write_text(json.dumps([{"key": "a", "cycles": 1010}]))
    table = _before_after(tmp_path, now)
    assert "| A | 1010 | 1015 | +0.5 % | 1.00 (30.5) | 4.00 (125.0) |" in table


def test_dsps_outside_the_array_by_hand():
    from convaccel.scripts.results import _dsp_outside_array

    units = [{"design": "window_generator", "dsp": 0}, {"design": "systolic_engine", "dsp": 64},
             {"design": "requant_activation", "dsp": 16}, {"design": "pool_unit", "dsp": 1},
             {"design": "conv_core", "dsp": 81}, {"design": "broken", "dsp": "-"}]
    assert _dsp_outside_array(units) == (
        "17 (window_generator 0, systolic_engine 0, requant_activation 16, pool_unit 1; "
        "the engine's 64 PE multipliers not counted)")


def test_a_failed_xilinx_synthesis_is_a_row_not_a_crash():
    from convaccel.scripts.synth import xilinx_table

    rows = [{"design": "pool_unit", "array": "8x8", "act_width": 8, "weight_width": 8,
             "synth_error": "yosys failed"},
            {"design": "mac_pe", "array": "8x8", "act_width": 8, "weight_width": 8,
             "luts": 12, "ffs": 34, "dsp": 1, "bram": 0, "lutram": 0, "synth_seconds": 1.5,
             "cells": {}}]
    table = xilinx_table(rows)
    assert "| pool_unit | 8x8 | 8 x 8 | synthesis failed (see the JSON) |" in table
    assert "| mac_pe | 8x8 | 8 x 8 | 12 | 34 | 1 | 0 (0/0) | 0 | 1.5 |" in table
