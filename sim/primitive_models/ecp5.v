// Behavioural models of the two ECP5 primitives the ECP5 target
// instantiates (hw/fpga_target.py), for simulating that netlist only.
// They cover exactly the modes the project uses and stop the simulation on
// any other parameter value, so a model can never silently stand in for a
// mode it does not describe:
//   DP16KD     - 18-bit data on both ports (1024 words; address bits 13..4,
//                ADA1/ADA0 are byte-write enables), port A writes, port B
//                reads, REGMODE NOREG or OUTREG, chip selects unused; or
//                36-bit data on both (512 words; address bits 13..5,
//                ADA3..ADA0 byte-write enables): the word is {DIB, DIA},
//                written on port A's clock (WEA), read on port B's clock
//                onto {DOB, DOA}, REGMODE the same on both ports.
//   MULT18X18D - signed 18 x 18, A/B input registers and the output
//                register on CLK0 with their clock enables, pipeline
//                register off, synchronous reset.
// Written from the primitives' documented behaviour (Lattice ECP5 sysDSP
// and sysMEM usage guides), not from a vendor model.

module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";

  localparam WIDE = DATA_WIDTH_A == 36;
  initial begin
    if (!((DATA_WIDTH_A == 18 && DATA_WIDTH_B == 18)
          || (DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36 && REGMODE_A == REGMODE_B))) begin
      $display("DP16KD model: only 18/18-bit ports or 36/36-bit with one REGMODE are modelled");
      $finish;
    end
  end

  reg [17:0] ram [0:1023];
  integer i;
  initial for (i = 0; i < 1024; i = i + 1) ram[i] = 18'd0;

  wire [9:0] addr_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4};
  wire [9:0] addr_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4};
  wire [17:0] din_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] din_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};

  reg [17:0] latch_a = 18'd0, latch_b = 18'd0, out_a = 18'd0, out_b = 18'd0;
  // 36-bit mode: words of {DIB, DIA}, written through port A, read through port B.
  reg [35:0] wide [0:511];
  initial for (i = 0; i < 512; i = i + 1) wide[i] = 36'd0;
  reg [35:0] wide_latch = 36'd0, wide_out = 36'd0;
  wire [35:0] wide_in = {din_b, din_a};
  always @(posedge CLKA) if (CEA) begin
    if (WIDE) begin
      if (WEA) begin
        if (ADA0) wide[addr_a[9:1]][8:0] <= wide_in[8:0];
        if (ADA1) wide[addr_a[9:1]][17:9] <= wide_in[17:9];
        if (ADA2) wide[addr_a[9:1]][26:18] <= wide_in[26:18];
        if (ADA3) wide[addr_a[9:1]][35:27] <= wide_in[35:27];
      end
    end else if (WEA) begin
      if (ADA0) ram[addr_a][8:0] <= din_a[8:0];
      if (ADA1) ram[addr_a][17:9] <= din_a[17:9];
    end else
      latch_a <= ram[addr_a];
  end
  always @(posedge CLKB) if (CEB) begin
    if (WIDE)
      wide_latch <= wide[addr_b[9:1]];
    else if (WEB) begin
      if (ADB0) ram[addr_b][8:0] <= din_b[8:0];
      if (ADB1) ram[addr_b][17:9] <= din_b[17:9];
    end else
      latch_b <= ram[addr_b];
  end
  always @(posedge CLKA) if (OCEA) out_a <= RSTA ? 18'd0 : latch_a;
  always @(posedge CLKB) if (OCEB) out_b <= RSTB ? 18'd0 : latch_b;
  always @(posedge CLKB) if (OCEB) wide_out <= RSTB ? 36'd0 : wide_latch;
  wire [35:0] wide_q = REGMODE_B == "OUTREG" ? wide_out : wide_latch;
  wire [17:0] q_a = WIDE ? wide_q[17:0] : REGMODE_A == "OUTREG" ? out_a : latch_a;
  wire [17:0] q_b = WIDE ? wide_q[35:18] : REGMODE_B == "OUTREG" ? out_b : latch_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = q_a;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = q_b;
endmodule

module MULT18X18D (
  input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
  input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
  input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
  input CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0,
  output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
  output P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter CLK0_DIV = "ENABLED";
  parameter CLK1_DIV = "ENABLED";
  parameter CLK2_DIV = "ENABLED";
  parameter CLK3_DIV = "ENABLED";
  parameter HIGHSPEED_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter CAS_MATCH_REG = "FALSE";
  parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED";
  parameter RESETMODE = "SYNC";

  initial begin
    if (REG_INPUTA_CLK != "CLK0" || REG_INPUTB_CLK != "CLK0" || REG_OUTPUT_CLK != "CLK0"
        || REG_PIPELINE_CLK != "NONE" || RESETMODE != "SYNC") begin
      $display("MULT18X18D model: only A, B and output registers on CLK0 with a synchronous reset are modelled");
      $finish;
    end
  end

  wire [3:0] ce = {CE3, CE2, CE1, CE0};
  wire [3:0] rst = {RST3, RST2, RST1, RST0};
  function integer index_of(input [8*4-1:0] name);
    index_of = name[7:0] - "0";
  endfunction
  wire ce_a = ce[index_of(REG_INPUTA_CE)], ce_b = ce[index_of(REG_INPUTB_CE)];
  wire ce_p = ce[index_of(REG_OUTPUT_CE)];
  wire rst_a = rst[index_of(REG_INPUTA_RST)], rst_b = rst[index_of(REG_INPUTB_RST)];
  wire rst_p = rst[index_of(REG_OUTPUT_RST)];

  wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  reg [17:0] a_reg = 18'd0, b_reg = 18'd0;
  reg [35:0] p_reg = 36'd0;
  wire signed [35:0] a_ext = SIGNEDA ? {{18{a_reg[17]}}, a_reg} : {18'd0, a_reg};
  wire signed [35:0] b_ext = SIGNEDB ? {{18{b_reg[17]}}, b_reg} : {18'd0, b_reg};
  always @(posedge CLK0) begin
    if (rst_a) a_reg <= 18'd0; else if (ce_a) a_reg <= a;
    if (rst_b) b_reg <= 18'd0; else if (ce_b) b_reg <= b;
    if (rst_p) p_reg <= 36'd0; else if (ce_p) p_reg <= a_ext * b_ext;
  end
  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
          P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p_reg;
endmodule
