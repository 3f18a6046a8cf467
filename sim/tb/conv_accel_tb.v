// Program player for the generated conv_accel top: plain Verilog-2005 with
// file I/O, accepted by Verilator (--binary --timing), Icarus Verilog
// (-g2005) and commercial simulators.
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
// records above; "X code edge" on a timeout or a protocol error). With an
// expected_out.hex ("last tdata" per beat) in the folder it checks every
// output beat and ends with "conv_accel_tb: PASS" or "conv_accel_tb: FAIL".
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
// The player is synchronous logic: at each rising edge it sees the values of
// the cycle that ends (handshakes, irq) and sets the next cycle's values with
// non-blocking assignments, like the design's own flip-flops, so every
// simulator schedules it the same way.
//
// Plusargs: +vcd=FILE dumps a VCD of the whole run.
`timescale 1ns/1ps

module conv_accel_tb;
  parameter PIXEL_BITS = 64;
  parameter WEIGHT_BITS = 64;
  parameter OUT_BITS = 64;
  parameter ADDR_BITS = 8;

  // Failure codes of "X code edge" records.
  localparam FAIL_OUTPUT_CHANGED = 1, FAIL_PIXELS_SHORT = 2, FAIL_WEIGHTS_SHORT = 3,
             FAIL_STREAM_TIMEOUT = 4, FAIL_IRQ_TIMEOUT = 5, FAIL_SYNC_TIMEOUT = 6,
             FAIL_WRITE_RESPONSE = 7, FAIL_READ_RESPONSE = 8, FAIL_OVERLAP = 9,
             FAIL_BUS_TIMEOUT = 10;
  // Cycles an AXI4-Lite transfer may take.
  localparam BUS_TIMEOUT = 1000;
  // Command codes of program.hex, and the player's states.
  localparam OP_END = 0, OP_WRITE = 1, OP_READ = 2, OP_START = 3, OP_WAIT_IRQ = 4, OP_IDLE = 5,
             OP_SYNC = 6, OP_RELEASE = 7, OP_BUS = 8;
  localparam FETCH = 0, WRITE = 1, WRITE_RESPONSE = 2, READ = 3, READ_RESPONSE = 4,
             WAIT_IRQ = 5, IDLE = 6, SYNC = 7, FINISHED = 8;

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

  integer program_fd, pixel_fd, weight_fd, out_fd, result_fd, expected_fd, got;
  integer mismatches = 0, checked = 0, layers = 0;
  reg [OUT_BITS-1:0] expected_word;
  reg [8*1024-1:0] vcd_file;

  initial begin
    program_fd = $fopen("program.hex", "r");
    pixel_fd = $fopen("pixels.hex", "r");
    weight_fd = $fopen("weights.hex", "r");
    out_fd = $fopen("out.hex", "w");
    result_fd = $fopen("results.txt", "w");
    expected_fd = $fopen("expected_out.hex", "r");   // optional: self-check
    if (program_fd == 0 || pixel_fd == 0 || weight_fd == 0) begin
      $display("conv_accel_tb: program.hex, pixels.hex or weights.hex missing");
      $finish;
    end
    if ($value$plusargs("vcd=%s", vcd_file)) begin
      $dumpfile(vcd_file);
      $dumpvars(0, conv_accel_tb);
    end
  end

  // Reset for the first three edges, released like a flip-flop.
  reg [1:0] reset_edges = 0;
  always @(posedge clk) begin
    if (reset_edges != 3) reset_edges <= reset_edges + 1;
    rst <= reset_edges != 3;
  end

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

  // Player state: read and written only here, so blocking assignments.
  reg [31:0] edges = 0;        // rising edges since reset was released
  reg [3:0] state = FETCH;
  reg [31:0] op, a, b, c, d, e, f, g, h, i, waited;
  reg [31:0] bus_rng = 1, bus_edge;
  reg [7:0] bus_gap = 0;
  reg aw_done, w_done, ar_done, bus_is_start;
  // The layer's streams.
  reg layer_on = 1'b0, released = 1'b0, start_due = 1'b0, start_aw, start_w, next_hold;
  reg [31:0] next_pixels, next_weights, next_outputs, next_stalls, next_seed, next_timeout;
  reg [31:0] pix_rng, wt_rng, out_rng;
  reg [7:0] pix_gap, wt_gap, out_stall;
  reg [31:0] pix_offered, pix_taken, pix_total, wt_offered, wt_taken, wt_total;
  reg [31:0] out_taken, out_total, layer_edge, layer_timeout, last_out_edge;
  reg out_held = 1'b0, held_last;
  reg [OUT_BITS-1:0] held_data;
  reg [31:0] beat_last;
  reg [PIXEL_BITS-1:0] pix_word;
  reg [WEIGHT_BITS-1:0] wt_word;
  reg [1023:0] junk;

  task fail;
    input [7:0] code;
    begin
      $fwrite(result_fd, "X %h %h\n", code, edges);
      state = FINISHED;
    end
  endtask

  // Steps the bus generator: call it only as a statement's own condition, never as an
  // operand of && or || (Verilog-2005 leaves short-circuiting to the simulator: Icarus
  // calls it where Verilator does not, and the delays would differ).
  function bus_pause;
    input dummy;
    begin
      bus_rng = xorshift(bus_rng);
      bus_pause = bus_rng[31:24] < bus_gap;
    end
  endfunction

  task begin_layer;
    begin
      start_due = 1'b0;
      layer_on = 1'b1;
      released = !next_hold;
      layer_edge = edges;
      last_out_edge = edges;
      pix_total = next_pixels;
      wt_total = next_weights;
      out_total = next_outputs;
      pix_offered = 0; pix_taken = 0; wt_offered = 0; wt_taken = 0; out_taken = 0;
      pix_gap = next_stalls[7:0];
      wt_gap = next_stalls[15:8];
      out_stall = next_stalls[23:16];
      pix_rng = nonzero(next_seed ^ 32'h9E3779B9);
      wt_rng = nonzero(next_seed ^ 32'h3C6EF372);
      out_rng = nonzero(next_seed ^ 32'hDAA66D2B);
      layer_timeout = next_timeout;
      out_held = 1'b0;
      layers = layers + 1;
      $fwrite(result_fd, "S %h\n", edges);
    end
  endtask

  // One edge of the layer's streams: count the handshakes of the cycle that
  // ends, step the pause patterns, set the next cycle's beats and tready.
  task step_streams;
    begin
      if (pix_tvalid && pix_tready) pix_taken = pix_taken + 1;
      if (wt_tvalid && wt_tready) wt_taken = wt_taken + 1;
      // A stalled output beat must stay valid and unchanged.
      if (out_held && (!out_tvalid || out_tdata != held_data || out_tlast != held_last))
        fail(FAIL_OUTPUT_CHANGED);
      out_held = out_tvalid && !out_tready;
      held_data = out_tdata;
      held_last = out_tlast;
      if (out_tvalid && out_tready) begin
        $fwrite(out_fd, "%0d %h\n", out_tlast, out_tdata);
        if (expected_fd != 0) begin
          // Self-check against expected_out.hex (the golden model's beats).
          got = $fscanf(expected_fd, "%h %h\n", beat_last, expected_word);
          if (got != 2 || beat_last[0] != out_tlast || expected_word != out_tdata) begin
            if (mismatches == 0)
              $display("conv_accel_tb: output beat %0d of layer %0d is %0d %h, expected %0d %h",
                       out_taken, layers - 1, out_tlast, out_tdata, beat_last[0], expected_word);
            mismatches = mismatches + 1;
          end
          checked = checked + 1;
        end
        out_taken = out_taken + 1;
        last_out_edge = edges;
      end
      pix_rng = xorshift(pix_rng);
      wt_rng = xorshift(wt_rng);
      out_rng = xorshift(out_rng);
      junk = {32{pix_rng ^ wt_rng}};
      if (!pix_tvalid || pix_tready) begin
        if (released && pix_offered < pix_total && pix_rng[31:24] >= pix_gap) begin
          got = $fscanf(pixel_fd, "%h %h\n", beat_last, pix_word);
          if (got != 2) fail(FAIL_PIXELS_SHORT);
          pix_tdata <= pix_word;
          pix_tlast <= beat_last[0];
          pix_tvalid <= 1'b1;
          pix_offered = pix_offered + 1;
        end else begin
          pix_tvalid <= 1'b0;
          pix_tdata <= junk[PIXEL_BITS-1:0];   // ignored while tvalid is low
        end
      end
      if (!wt_tvalid || wt_tready) begin
        if (released && wt_offered < wt_total && wt_rng[31:24] >= wt_gap) begin
          got = $fscanf(weight_fd, "%h %h\n", beat_last, wt_word);
          if (got != 2) fail(FAIL_WEIGHTS_SHORT);
          wt_tdata <= wt_word;
          wt_tlast <= beat_last[0];
          wt_tvalid <= 1'b1;
          wt_offered = wt_offered + 1;
        end else begin
          wt_tvalid <= 1'b0;
          wt_tdata <= junk[WEIGHT_BITS-1:0];
        end
      end
      out_tready <= out_taken < out_total && out_rng[31:24] >= out_stall;
      if (pix_taken == pix_total && wt_taken == wt_total && out_taken == out_total) begin
        layer_on = 1'b0;
        $fwrite(result_fd, "D %h %h %h %h\n", last_out_edge, pix_taken, wt_taken, out_taken);
      end else if (edges - layer_edge > layer_timeout) begin
        fail(FAIL_STREAM_TIMEOUT);
      end
    end
  endtask

  // End of the program (complete) or of a failed run: close the files, say
  // PASS or FAIL when expected_out.hex was there to check against.
  task finish;
    input complete;
    begin
      $fwrite(result_fd, "E %h\n", edges);
      $fclose(out_fd);
      $fclose(result_fd);
      if (expected_fd != 0) begin
        if (complete && mismatches == 0 && checked > 0)
          $display("conv_accel_tb: PASS, %0d layers, %0d output beats as expected, %0d cycles",
                   layers, checked, edges);
        else if (complete)
          $display("conv_accel_tb: FAIL, %0d of %0d output beats differ", mismatches, checked);
        else
          $display("conv_accel_tb: FAIL, the program did not finish (see results.txt)");
      end
      $finish;
    end
  endtask

  // Read the next command; start its bus transfer or its wait.
  task fetch;
    begin
      got = $fscanf(program_fd, "%h", op);
      if (got != 1) op = OP_END;
      bus_edge = edges;
      waited = 0;
      case (op)
        OP_WRITE, OP_START: begin
          if (op == OP_WRITE) begin
            got = $fscanf(program_fd, "%h %h\n", a, b);
          end else begin
            got = $fscanf(program_fd, "%h %h %h %h %h %h %h %h %h\n", a, b, next_pixels,
                          next_weights, next_outputs, next_stalls, next_seed, next_timeout, i);
            next_hold = i[0];
            if (layer_on) fail(FAIL_OVERLAP);
            start_aw = 1'b0;
            start_w = 1'b0;
            start_due = 1'b1;
          end
          aw_done = 1'b0;
          w_done = 1'b0;
          awaddr <= a[ADDR_BITS-1:0];
          wdata <= b;
          if (!bus_pause(0)) begin awvalid <= 1'b1; end
          if (!bus_pause(0)) begin wvalid <= 1'b1; end
          if (state != FINISHED) state = WRITE;
        end
        OP_READ: begin
          got = $fscanf(program_fd, "%h\n", a);
          araddr <= a[ADDR_BITS-1:0];
          if (!bus_pause(0)) arvalid <= 1'b1;
          state = READ;
        end
        OP_WAIT_IRQ: begin
          got = $fscanf(program_fd, "%h\n", a);
          state = WAIT_IRQ;
        end
        OP_IDLE: begin
          got = $fscanf(program_fd, "%h\n", a);
          state = IDLE;
        end
        OP_SYNC: begin
          got = $fscanf(program_fd, "%h\n", a);
          state = SYNC;
        end
        OP_RELEASE: released = 1'b1;
        OP_BUS: begin
          got = $fscanf(program_fd, "%h %h\n", a, b);
          bus_rng = nonzero(a);
          bus_gap = b[7:0];
        end
        default: finish(1'b1);
      endcase
    end
  endtask

  always @(posedge clk) begin
    if (!rst && state != FINISHED) begin
      edges = edges + 1;
      if (start_due) begin
        start_aw = start_aw || (awvalid && awready);
        start_w = start_w || (wvalid && wready);
        if (start_aw && start_w) begin_layer;   // the start edge
      end
      if (layer_on) step_streams;
      if (state != FETCH && state != FINISHED && edges - bus_edge > BUS_TIMEOUT
          && (state == WRITE || state == WRITE_RESPONSE || state == READ
              || state == READ_RESPONSE))
        fail(FAIL_BUS_TIMEOUT);
      case (state)
        FETCH: fetch;
        WRITE: begin
          if (awvalid && awready) begin aw_done = 1'b1; awvalid <= 1'b0; end
          else if (!aw_done && !awvalid) begin if (!bus_pause(0)) awvalid <= 1'b1; end
          if (wvalid && wready) begin w_done = 1'b1; wvalid <= 1'b0; end
          else if (!w_done && !wvalid) begin if (!bus_pause(0)) wvalid <= 1'b1; end
          if (aw_done && w_done) begin
            bready <= !bus_pause(0);
            state = WRITE_RESPONSE;
          end
        end
        WRITE_RESPONSE: begin
          if (bvalid && bready) begin
            bready <= 1'b0;
            if (bresp != 2'b00) fail(FAIL_WRITE_RESPONSE);
            else state = FETCH;
          end else begin
            bready <= !bus_pause(0);
          end
        end
        READ: begin
          if (arvalid && arready) begin
            arvalid <= 1'b0;
            rready <= !bus_pause(0);
            state = READ_RESPONSE;
          end else if (!arvalid) begin
            if (!bus_pause(0)) arvalid <= 1'b1;
          end
        end
        READ_RESPONSE: begin
          if (rvalid && rready) begin
            rready <= 1'b0;
            $fwrite(result_fd, "R %h %h\n", a, rdata);
            if (rresp != 2'b00) fail(FAIL_READ_RESPONSE);
            else state = FETCH;
          end else begin
            rready <= !bus_pause(0);
          end
        end
        WAIT_IRQ: begin
          if (irq) begin
            $fwrite(result_fd, "I %h\n", edges);
            state = FETCH;
          end else if (waited > a) begin
            fail(FAIL_IRQ_TIMEOUT);
          end
          waited = waited + 1;
        end
        IDLE: begin
          waited = waited + 1;
          if (waited >= a) state = FETCH;
        end
        SYNC: begin
          if (!layer_on && !start_due) state = FETCH;
          else if (waited > a) fail(FAIL_SYNC_TIMEOUT);
          waited = waited + 1;
        end
        default: ;
      endcase
      if (state == FINISHED) finish(1'b0);
    end
  end
endmodule
