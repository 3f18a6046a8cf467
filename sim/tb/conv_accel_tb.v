// Program player for the generated conv_accel top: plain Verilog-2005 with
// file I/O, accepted by Verilator (--binary --timing), Icarus Verilog
// (-g2012) and commercial simulators.
//
// It reads a layer program from hex files in the working folder:
//   program.hex  one command per line (hex numbers):
//                1 addr data      AXI4-Lite write
//                2 addr           AXI4-Lite read             -> "R addr data"
//                3 addr data pixels weights outputs stalls seed timeout hold
//                                 start a layer: write control.start (addr,
//                                 data), then stream the layer's beats
//                                 -> "S edge" at the start edge, and
//                                    "D edge pixels weights outputs" when
//                                    its streams are through (edge of the
//                                    last output handshake)
//                4 timeout        wait for irq               -> "I edge"
//                5 cycles         idle
//                6 timeout        wait until the layer's streams are through
//                7                release sources held by "hold" = 1
//                8 seed threshold random delays on the AXI4-Lite bus
//                0                end                         -> "E edge"
//   pixels.hex, weights.hex: "last tdata" per beat.
// and writes out.hex ("last tdata" per output beat) and results.txt (the
// records above; "X what edge" on a timeout or a protocol error).
//
// Stalls: from a layer's start edge (the edge that completes the later of
// the AW and W handshakes of the start write) each stream steps a 32-bit
// xorshift generator (13, 17, 5) once per edge; the stream is paused in the
// next cycle when the generator's top byte is below its threshold (stalls
// bits 7..0 pixels, 15..8 weights, 23..16 output). A source offers its next
// beat when it holds no untaken beat and is not paused; the output's tready
// is "not paused" while beats are still due. The generators start from
// seed ^ (0x9E3779B9 * k) for k = 1, 2, 3 (1 if that is 0).
//
// Plusargs: +vcd=FILE dumps a VCD of the whole run.
`timescale 1ns/1ps

module conv_accel_tb;
  parameter PIXEL_BITS = 64;
  parameter WEIGHT_BITS = 64;
  parameter OUT_BITS = 64;
  parameter ADDR_BITS = 8;

  reg clk = 1'b0;
  reg rst = 1'b1;
  always #5 clk = ~clk;

  // AXI4-Lite master
  reg  [ADDR_BITS-1:0] awaddr = 0, araddr = 0;
  reg  awvalid = 1'b0, wvalid = 1'b0, bready = 1'b0, arvalid = 1'b0, rready = 1'b0;
  reg  [31:0] wdata = 0;
  wire awready, wready, bvalid, arready, rvalid;
  wire [1:0] bresp, rresp;
  wire [31:0] rdata;
  // AXI4-Stream ports
  reg  [PIXEL_BITS-1:0] pix_tdata = 0;
  reg  pix_tvalid = 1'b0, pix_tlast = 1'b0;
  wire pix_tready;
  reg  [WEIGHT_BITS-1:0] wt_tdata = 0;
  reg  wt_tvalid = 1'b0, wt_tlast = 1'b0;
  wire wt_tready;
  wire [OUT_BITS-1:0] out_tdata;
  wire out_tvalid, out_tlast;
  reg  out_tready = 1'b0;
  wire irq;

  conv_accel conv_accel (
    .clk(clk), .rst(rst),
    .s_axil_awaddr(awaddr), .s_axil_awprot(3'b000), .s_axil_awvalid(awvalid),
    .s_axil_awready(awready),
    .s_axil_wdata(wdata), .s_axil_wstrb(4'hF), .s_axil_wvalid(wvalid), .s_axil_wready(wready),
    .s_axil_bresp(bresp), .s_axil_bvalid(bvalid), .s_axil_bready(bready),
    .s_axil_araddr(araddr), .s_axil_arprot(3'b000), .s_axil_arvalid(arvalid),
    .s_axil_arready(arready),
    .s_axil_rdata(rdata), .s_axil_rresp(rresp), .s_axil_rvalid(rvalid), .s_axil_rready(rready),
    .s_axis_pixels_tdata(pix_tdata), .s_axis_pixels_tvalid(pix_tvalid),
    .s_axis_pixels_tlast(pix_tlast), .s_axis_pixels_tready(pix_tready),
    .s_axis_weights_tdata(wt_tdata), .s_axis_weights_tvalid(wt_tvalid),
    .s_axis_weights_tlast(wt_tlast), .s_axis_weights_tready(wt_tready),
    .m_axis_out_tdata(out_tdata), .m_axis_out_tvalid(out_tvalid),
    .m_axis_out_tlast(out_tlast), .m_axis_out_tready(out_tready),
    .irq(irq));

  integer program_fd, pixel_fd, weight_fd, out_fd, result_fd;
  reg [31:0] edges = 0;        // rising edges since reset was released
  reg failed = 1'b0;

  function [31:0] xorshift;
    input [31:0] x;
    reg [31:0] y;
    begin
      y = x ^ (x << 13);
      y = y ^ (y >> 17);
      xorshift = y ^ (y << 5);
    end
  endfunction

  function [31:0] nonzero;
    input [31:0] x;
    nonzero = (x == 0) ? 32'd1 : x;
  endfunction

  // -- the layer's streams, one step per rising edge ----------------------------
  reg layer_on = 1'b0, released = 1'b0;
  reg [31:0] pix_rng, wt_rng, out_rng, bus_rng = 1;
  reg [7:0] pix_gap, wt_gap, out_stall, bus_gap = 0;
  reg [31:0] pix_offered, pix_taken, pix_total, wt_offered, wt_taken, wt_total;
  reg [31:0] out_taken, out_total, layer_edge, layer_timeout, last_out_edge;
  reg out_held = 1'b0, held_last;
  reg [OUT_BITS-1:0] held_data;
  reg [31:0] beat_last;
  reg [1023:0] junk;
  integer got;

  // Handshakes of the cycle that ended at this edge (sampled before any update).
  reg aw_hs, w_hs, b_hs, ar_hs, r_hs, irq_now, pix_hs, wt_hs, out_hs, out_valid_now, out_last_now;
  reg [OUT_BITS-1:0] out_data_now;

  // Failure codes of "X code edge" records.
  localparam FAIL_OUTPUT_CHANGED = 1, FAIL_PIXELS_SHORT = 2, FAIL_WEIGHTS_SHORT = 3,
             FAIL_STREAM_TIMEOUT = 4, FAIL_IRQ_TIMEOUT = 5, FAIL_SYNC_TIMEOUT = 6,
             FAIL_WRITE_RESPONSE = 7, FAIL_READ_RESPONSE = 8, FAIL_OVERLAP = 9, FAIL_BUS_TIMEOUT = 10;
  // Cycles an AXI4-Lite transfer may take.
  localparam BUS_TIMEOUT = 1000;

  task fail;
    input [7:0] code;
    begin
      $fwrite(result_fd, "X %h %h\n", code, edges);
      failed = 1'b1;
    end
  endtask

  task step_streams;
    begin
      if (pix_hs) pix_taken = pix_taken + 1;
      if (wt_hs) wt_taken = wt_taken + 1;
      // A stalled output beat must stay valid and unchanged.
      if (out_held && (!out_valid_now || out_data_now != held_data || out_last_now != held_last))
        fail(FAIL_OUTPUT_CHANGED);
      out_held = out_valid_now && !out_hs;
      held_data = out_data_now;
      held_last = out_last_now;
      if (out_hs) begin
        $fwrite(out_fd, "%0d %h\n", out_last_now, out_data_now);
        out_taken = out_taken + 1;
        last_out_edge = edges;
      end
      pix_rng = xorshift(pix_rng);
      wt_rng = xorshift(wt_rng);
      out_rng = xorshift(out_rng);
      junk = {32{pix_rng ^ wt_rng}};
      // Sources: a new beat when the last one was taken (or none is up) and not paused.
      if (!pix_tvalid || pix_hs) begin
        if (released && pix_offered < pix_total && pix_rng[31:24] >= pix_gap) begin
          got = $fscanf(pixel_fd, "%h %h\n", beat_last, pix_tdata);
          if (got != 2) fail(FAIL_PIXELS_SHORT);
          pix_tlast = beat_last[0];
          pix_tvalid = 1'b1;
          pix_offered = pix_offered + 1;
        end else begin
          pix_tvalid = 1'b0;
          pix_tdata = junk[PIXEL_BITS-1:0];   // ignored while tvalid is low
        end
      end
      if (!wt_tvalid || wt_hs) begin
        if (released && wt_offered < wt_total && wt_rng[31:24] >= wt_gap) begin
          got = $fscanf(weight_fd, "%h %h\n", beat_last, wt_tdata);
          if (got != 2) fail(FAIL_WEIGHTS_SHORT);
          wt_tlast = beat_last[0];
          wt_tvalid = 1'b1;
          wt_offered = wt_offered + 1;
        end else begin
          wt_tvalid = 1'b0;
          wt_tdata = junk[WEIGHT_BITS-1:0];
        end
      end
      out_tready = out_taken < out_total && out_rng[31:24] >= out_stall;
      if (pix_taken == pix_total && wt_taken == wt_total && out_taken == out_total) begin
        layer_on = 1'b0;
        $fwrite(result_fd, "D %h %h %h %h\n", last_out_edge, pix_taken, wt_taken, out_taken);
      end else if (edges - layer_edge > layer_timeout) begin
        fail(FAIL_STREAM_TIMEOUT);
      end
    end
  endtask

  // -- one clock edge: every waiting loop of the command player calls it -------
  reg start_due = 1'b0, start_aw, start_w;
  reg [31:0] next_total [0:2];
  reg [31:0] next_stalls, next_seed, next_timeout;
  reg next_hold;

  task tick;
    begin
      // Sample mid-cycle (everything has settled), let the edge take the values,
      // then drive the next cycle's values just after the edge: no race with
      // the design's flip-flops in any simulator.
      @(negedge clk);
      aw_hs = awvalid && awready;
      w_hs = wvalid && wready;
      b_hs = bvalid && bready;
      ar_hs = arvalid && arready;
      r_hs = rvalid && rready;
      pix_hs = pix_tvalid && pix_tready;
      wt_hs = wt_tvalid && wt_tready;
      out_valid_now = out_tvalid;
      out_hs = out_tvalid && out_tready;
      out_data_now = out_tdata;
      out_last_now = out_tlast;
      irq_now = irq;
      @(posedge clk);
      #1;
      edges = edges + 1;
      if (start_due) begin
        start_aw = start_aw || aw_hs;
        start_w = start_w || w_hs;
        if (start_aw && start_w) begin
          // The start edge: the layer's streams begin here.
          start_due = 1'b0;
          layer_on = 1'b1;
          released = !next_hold;
          layer_edge = edges;
          last_out_edge = edges;
          pix_total = next_total[0];
          wt_total = next_total[1];
          out_total = next_total[2];
          pix_offered = 0; pix_taken = 0; wt_offered = 0; wt_taken = 0; out_taken = 0;
          pix_gap = next_stalls[7:0];
          wt_gap = next_stalls[15:8];
          out_stall = next_stalls[23:16];
          pix_rng = nonzero(next_seed ^ 32'h9E3779B9);
          wt_rng = nonzero(next_seed ^ 32'h3C6EF372);
          out_rng = nonzero(next_seed ^ 32'hDAA66D2B);
          layer_timeout = next_timeout;
          out_held = 1'b0;
          $fwrite(result_fd, "S %h\n", edges);
        end
      end
      if (layer_on) step_streams;
    end
  endtask

  // -- AXI4-Lite master with random delays -------------------------------------
  reg [31:0] bus_edge;

  // Random delay before a request or a response handshake.
  function bus_pause;
    input dummy;
    begin
      bus_rng = xorshift(bus_rng);
      bus_pause = bus_rng[31:24] < bus_gap;
    end
  endfunction

  task bus_write;
    input [31:0] addr;
    input [31:0] data;
    reg aw_done, w_done, b_done;
    begin
      bus_edge = edges;
      aw_done = 1'b0;
      w_done = 1'b0;
      b_done = 1'b0;
      while (!(aw_done && w_done) && !failed) begin
        if (!aw_done && !awvalid && !bus_pause(0)) begin
          awvalid = 1'b1;
          awaddr = addr[ADDR_BITS-1:0];
        end
        if (!w_done && !wvalid && !bus_pause(0)) begin
          wvalid = 1'b1;
          wdata = data;
        end
        tick;
        if (edges - bus_edge > BUS_TIMEOUT) fail(FAIL_BUS_TIMEOUT);
        if (aw_hs) begin aw_done = 1'b1; awvalid = 1'b0; end
        if (w_hs) begin w_done = 1'b1; wvalid = 1'b0; end
      end
      while (!b_done && !failed) begin
        bready = !bus_pause(0);
        tick;
        if (edges - bus_edge > BUS_TIMEOUT) fail(FAIL_BUS_TIMEOUT);
        if (b_hs) begin
          b_done = 1'b1;
          bready = 1'b0;
          if (bresp != 2'b00) fail(FAIL_WRITE_RESPONSE);
        end
      end
    end
  endtask

  task bus_read;
    input [31:0] addr;
    reg ar_done, r_done;
    begin
      bus_edge = edges;
      ar_done = 1'b0;
      r_done = 1'b0;
      while (!ar_done && !failed) begin
        if (!arvalid && !bus_pause(0)) begin
          arvalid = 1'b1;
          araddr = addr[ADDR_BITS-1:0];
        end
        tick;
        if (edges - bus_edge > BUS_TIMEOUT) fail(FAIL_BUS_TIMEOUT);
        if (ar_hs) begin ar_done = 1'b1; arvalid = 1'b0; end
      end
      while (!r_done && !failed) begin
        rready = !bus_pause(0);
        tick;
        if (edges - bus_edge > BUS_TIMEOUT) fail(FAIL_BUS_TIMEOUT);
        if (r_hs) begin
          r_done = 1'b1;
          rready = 1'b0;
          if (rresp != 2'b00) fail(FAIL_READ_RESPONSE);
          $fwrite(result_fd, "R %h %h\n", addr, rdata);
        end
      end
    end
  endtask

  // -- the command player --------------------------------------------------------
  reg [31:0] op, a, b, c, d, e, f, g, h, i;
  reg [8*1024-1:0] vcd_file;
  integer waited;

  initial begin
    program_fd = $fopen("program.hex", "r");
    pixel_fd = $fopen("pixels.hex", "r");
    weight_fd = $fopen("weights.hex", "r");
    out_fd = $fopen("out.hex", "w");
    result_fd = $fopen("results.txt", "w");
    if (program_fd == 0 || pixel_fd == 0 || weight_fd == 0) begin
      $display("conv_accel_tb: program.hex, pixels.hex or weights.hex missing");
      $finish;
    end
    if ($value$plusargs("vcd=%s", vcd_file)) begin
      $dumpfile(vcd_file);
      $dumpvars(0, conv_accel_tb);
    end
    repeat (3) @(posedge clk);
    #1 rst = 1'b0;
    op = 1;
    while (op != 0 && !failed) begin
      got = $fscanf(program_fd, "%h", op);
      if (got != 1) op = 0;
      case (op)
        1: begin
          got = $fscanf(program_fd, "%h %h\n", a, b);
          bus_write(a, b);
        end
        2: begin
          got = $fscanf(program_fd, "%h\n", a);
          bus_read(a);
        end
        3: begin
          got = $fscanf(program_fd, "%h %h %h %h %h %h %h %h %h\n", a, b, c, d, e, f, g, h, i);
          next_total[0] = c;
          next_total[1] = d;
          next_total[2] = e;
          next_stalls = f;
          next_seed = g;
          next_timeout = h;
          next_hold = i[0];
          if (layer_on) fail(FAIL_OVERLAP);
          start_aw = 1'b0;
          start_w = 1'b0;
          start_due = 1'b1;
          bus_write(a, b);
        end
        4: begin
          got = $fscanf(program_fd, "%h\n", a);
          waited = 0;
          tick;
          while (!irq_now && !failed) begin
            if (waited > a) fail(FAIL_IRQ_TIMEOUT);
            waited = waited + 1;
            tick;
          end
          if (!failed) $fwrite(result_fd, "I %h\n", edges);
        end
        5: begin
          got = $fscanf(program_fd, "%h\n", a);
          repeat (a) tick;
        end
        6: begin
          got = $fscanf(program_fd, "%h\n", a);
          waited = 0;
          while ((layer_on || start_due) && !failed) begin
            if (waited > a) fail(FAIL_SYNC_TIMEOUT);
            waited = waited + 1;
            tick;
          end
        end
        7: released = 1'b1;
        8: begin
          got = $fscanf(program_fd, "%h %h\n", a, b);
          bus_rng = nonzero(a);
          bus_gap = b[7:0];
        end
        default: op = 0;
      endcase
    end
    $fwrite(result_fd, "E %h\n", edges);
    $fclose(out_fd);
    $fclose(result_fd);
    $finish;
  end
endmodule
