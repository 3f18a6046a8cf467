"""The ECP5 netlists (primitives with their registers on) behave like the plain ones.

:class:`RegisteredMultiplier` and :class:`BankedMemory` elaborate to
``MULT18X18D`` / ``DP16KD`` instances for ECP5 (hw/fpga_target.py). Both
versions are simulated side by side under Verilator (the primitives by the
behavioural models in sim/primitive_models/ecp5.v) on random stimulus, and
every cycle's outputs must agree; the plain version is itself checked
against arithmetic here (Amaranth simulation).
"""

import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from convaccel.hw.banked_memory import BankedMemory
from convaccel.hw.fpga_target import ECP5, FPGATarget, primitive_family
from convaccel.hw.registered_multiplier import RegisteredMultiplier
from convaccel.sim.fast import FAST_ARGS, TIMESCALE_LINE
from convaccel.sim.toolchain import setup_verilator
from convaccel.sim.primitive_models import ECP5_MODELS

CYCLES = 4000


def test_target_names_its_family():
    assert primitive_family(ECP5) == "ecp5"
    assert primitive_family(None) is None
    with pytest.raises(ValueError, match="family"):
        FPGATarget("virtex2")


def test_registered_multiplier_products_two_edges_later():
    dut = RegisteredMultiplier(8, 8)
    rng = np.random.default_rng(3)
    stimulus = [(int(rng.integers(-128, 128)), int(rng.integers(-128, 128)),
                 int(rng.random() < 0.8), int(rng.random() < 0.8), int(rng.random() < 0.8))
                for _ in range(300)]

    async def bench(ctx):
        a_reg = b_reg = p_reg = 0
        for a, b, a_en, b_en, p_en in stimulus:
            ctx.set(dut.a, a), ctx.set(dut.b, b)
            ctx.set(dut.a_en, a_en), ctx.set(dut.b_en, b_en), ctx.set(dut.p_en, p_en)
            await ctx.tick()
            # The reference registers, updated in the same order as the hardware.
            p_reg = a_reg * b_reg if p_en else p_reg
            a_reg = a if a_en else a_reg
            b_reg = b if b_en else b_reg
            assert ctx.get(dut.p) == p_reg

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_ecp5_netlists_switch_the_primitive_registers_on():
    mult = verilog.convert(RegisteredMultiplier(8, 8), name="m", platform=ECP5, emit_src=False)
    assert mult.count("MULT18X18D") == 1
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert f'.REG_{register}_CLK("CLK0")' in mult
    memory = verilog.convert(BankedMemory(unsigned(64), 3000, 512), name="b",
                             platform=ECP5, emit_src=False)
    assert memory.count("DP16KD #(") == 3 * 4       # 3 banks of 1024 x (4 x 18 bits)
    assert memory.count('"OUTREG"') == 12
    wide = verilog.convert(BankedMemory(unsigned(64), 3000, 512, ram_width=36), name="w",
                           platform=ECP5, emit_src=False)
    assert wide.count("DP16KD #(") == 6 * 2         # 6 banks of 512 x (2 x 36 bits)
    assert wide.count('"OUTREG"') == 2 * 12 and wide.count(".DATA_WIDTH_B(32'd36)") == 12
    # Operands wider than one multiplier block stay plain logic.
    assert "MULT18X18D" not in verilog.convert(RegisteredMultiplier(20, 8), name="w",
                                               platform=ECP5, emit_src=False)


MULT_BENCH = """
module bench;
  reg clk = 0, rst = 1;
  always #5 clk = ~clk;
  reg signed [7:0] a = 0, b = 0;
  reg a_en = 1, b_en = 1, p_en = 1;
  wire signed [15:0] p_plain, p_ecp5;
  plain plain(.clk(clk), .rst(rst), .a(a), .b(b), .a_en(a_en), .b_en(b_en), .p_en(p_en), .p(p_plain));
  ecp5 ecp5(.clk(clk), .rst(rst), .a(a), .b(b), .a_en(a_en), .b_en(b_en), .p_en(p_en), .p(p_ecp5));
  integer cycle, errors = 0, seed = 7;
  initial begin
    for (cycle = 0; cycle < CYCLES; cycle = cycle + 1) begin
      @(negedge clk);
      if (p_plain !== p_ecp5) errors = errors + 1;
      a = $random(seed); b = $random(seed);
      a_en = ($random(seed) & 3) != 0; b_en = ($random(seed) & 3) != 0;
      p_en = ($random(seed) & 3) != 0; rst = ($random(seed) & 63) == 0;
    end
    $display("compared %0d cycles, %0d mismatches", CYCLES, errors);
    $finish;
  end
endmodule
"""

MEMORY_BENCH = """
module bench;
  reg clk = 0, rst = 1;
  always #5 clk = ~clk;
  reg write_en = 0;
  reg [11:0] write_addr = 0, read_addr = 1;
  reg [63:0] write_data = 0;
  wire [63:0] plain_data, ecp5_data;
  plain plain(.clk(clk), .rst(rst), .write_en(write_en), .write_addr(write_addr),
              .write_data(write_data), .read_addr(read_addr), .read_data(plain_data));
  ecp5 ecp5(.clk(clk), .rst(rst), .write_en(write_en), .write_addr(write_addr),
            .write_data(write_data), .read_addr(read_addr), .read_data(ecp5_data));
  integer cycle, errors = 0, nonzero = 0, seed = 11;
  initial begin
    for (cycle = 0; cycle < CYCLES; cycle = cycle + 1) begin
      @(negedge clk);
      rst = 0;
      if (plain_data !== ecp5_data) errors = errors + 1;
      if (plain_data != 0) nonzero = nonzero + 1;
      write_en = $random(seed);
      write_addr = ($random(seed) & 4095) % DEPTH;
      write_data = {$random(seed), $random(seed)};
      // Never read the word being written in the same cycle (undefined).
      read_addr = ($random(seed) & 4095) % DEPTH;
      if (read_addr == write_addr) read_addr = (read_addr + 1) % DEPTH;
    end
    $display("compared %0d cycles, %0d mismatches, %0d nonzero", CYCLES, errors, nonzero);
    $finish;
  end
endmodule
"""


def run_side_by_side(tmp_path, component_factory, bench, **defines):
    """Simulate the plain and the ECP5 netlist of one component together."""
    plain = verilog.convert(component_factory(), name="plain", emit_src=False)
    ecp5 = verilog.convert(component_factory(), name="ecp5", platform=ECP5, emit_src=False)
    for key, value in defines.items():
        bench = bench.replace(key, str(value))
    for name, text in (("plain.v", plain), ("ecp5.v", ecp5), ("bench.v", bench)):
        (tmp_path / name).write_text(TIMESCALE_LINE + text)
    command = [str(setup_verilator()), *FAST_ARGS, "--top-module", "bench",
               "-Wno-MULTIDRIVEN", "--Mdir", str(tmp_path / "obj"), "-o", "bench",
               str(ECP5_MODELS), str(tmp_path / "plain.v"), str(tmp_path / "ecp5.v"),
               str(tmp_path / "bench.v")]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    ran = subprocess.run([str(tmp_path / "obj" / "bench")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


@pytest.mark.cocotb
def test_ecp5_multiplier_matches_plain_logic(tmp_path):
    out = run_side_by_side(tmp_path, lambda: RegisteredMultiplier(8, 8), MULT_BENCH,
                           CYCLES=CYCLES)
    assert f"compared {CYCLES} cycles, 0 mismatches" in out, out


@pytest.mark.cocotb
@pytest.mark.parametrize("ram_width, registered_write", [(18, True), (36, True), (36, False)])
def test_ecp5_banked_memory_matches_plain_logic(tmp_path, ram_width, registered_write):
    depth = 3000
    out = run_side_by_side(
        tmp_path, lambda: BankedMemory(unsigned(64), depth, 512, ram_width=ram_width,
                                       registered_write=registered_write),
        MEMORY_BENCH, CYCLES=CYCLES, DEPTH=depth)
    assert f"compared {CYCLES} cycles, 0 mismatches" in out, out
    nonzero = int(out.split("mismatches, ")[1].split()[0])
    assert nonzero > CYCLES // 4, out      # the reads really returned written data
