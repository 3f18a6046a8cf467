"""Streaming tiled matrix engine: the systolic array plus its sequencer.

Computes, for a problem sized at run time (``N`` vectors, ``K`` reduction
terms, ``M`` outputs, within the generate-time maxima)::

    out[n][m] = sum_{k < K} A[n][k] * W[k][m]

exactly, at the contract's accumulator width. For a convolution, ``n`` is
the output position, ``k`` runs over ``C*R*S`` and ``m`` over output
channels.

Tiling (loop order, outermost first)::

    for each block of up to B = array_block vectors (within one output row):
        for each reduction tile kt (array_rows terms):
            for each output tile mt (array_cols outputs):
                stream the block's vectors (slice kt) through the array
                with weight tile (kt, mt)

The first reduction tile starts from 0; later ones add to the partial sums
kept in an accumulator buffer of ``B x ceil(max_out_channels/cols)`` words
of ``cols`` sums; the last one sends its sums to the ``result`` stream
instead. Each activation slice arrives once per (block, kt) and is reused
from a small buffer for the other output tiles. Weight tiles are loaded
into the array's shadow registers while the previous tile computes (see
:mod:`convaccel.hw.systolic_array`).

Grouped problems (block-diagonal ``W``, see :mod:`convaccel.hw.group_tiles`):
with ``chunks >= 2`` the reduction tiles form taps of ``chunks`` tiles each
(``kt = tap * chunks + chunk``; ``K`` must be a multiple of ``chunks * R``)
and reduction tile ``kt`` visits only the output tiles
``tile_map[chunk].lo .. tile_map[chunk].hi``; all other tiles are zero and
skipped (no weight beats, no cycles). An output tile's sums start from 0 at
its first visit in a block and leave for ``result`` at its last, so the
result order stays block, mt, n. ``chunks`` of 0 or 1 is the dense problem.

Stream orders (``rows = array_rows``, ``cols = array_cols``, zero padding
where ``K`` or ``M`` does not fill a tile; blocks end at ``row_length``):

* ``act``: for block, for kt, for n in block: ``A[n][kt*rows : kt*rows+rows]``;
* ``weights``: for block, for kt, for mt (visited tiles only), for i < rows:
  ``W[kt*rows+i][mt*cols : mt*cols+cols]``;
* ``result``: for block, for mt, for n in block: ``out[n][mt*cols : mt*cols+cols]``
  (``last`` set on the problem's final beat).

Flow control: vectors enter the array only when every result they will
produce has a reserved place in the output FIFO, so the array itself never
stalls; there is no combinational path from ``result.ready`` to any input
``ready`` (the reservation uses registered FIFO and in-flight counts).

Pipeline fill: a step (one weight tile) needs its weights fully loaded and,
for a reduction tile after the first, the previous tile's sums written
back. Steady state therefore shows no bubble when a block has at least
``R + C + 1`` vectors and two visits of an output tile start at least
``LATENCY + 2`` issues apart (dense: ``ceil(M/C) * block >= LATENCY + 2``);
below that, the sequencer waits and counts the cycles as weight or drain
stalls.

Run-time errors: ``N``, ``K`` or ``M`` of zero or above the maximum, a
``row_length`` of zero, or ``chunks`` above the maximum sets
``job.error`` (and ``job.done``) the cycle after ``job.start`` and the engine
stays idle.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .banked_memory import BankedMemory
from .config import AccelConfig, checked_config
from .helpers import above, smallest_of, times_constant, times_small
from .job_control import JobControl
from .tile_sequencer import TileSequencer, layer_size_members
from .systolic_array import SystolicArray

__all__ = ["SystolicEngine", "engine_counters_layout"]


def engine_counters_layout() -> data.StructLayout:
    """Performance counters, cleared at ``start``."""
    return data.StructLayout({
        "busy_cycles": 32,      # cycles from start to the last result beat
        "active_cycles": 32,    # cycles that issued a vector (>= 1 useful MAC)
        "issued_macs": 48,      # products on terms < K and outputs < M (slots a conv may pad)
        "input_stall": 32,      # waiting for the act stream
        "output_stall": 32,     # waiting for room in the output FIFO
        "weight_stall": 32,     # waiting for the next weight tile
        "drain_stall": 32,      # waiting for partial sums to be written back
    })


class SystolicEngine(wiring.Component):
    """Systolic array with tiling sequencer, buffers, streams and counters.

    Parameters
    ----------
    config : AccelConfig
        Array size, ``array_block``, widths and maxima.

    Attributes
    ----------
    act : In(stream.Signature(ArrayLayout(signed(act_width), rows)))
        Activation slices (order in the module docstring).
    weights : In(stream.Signature(ArrayLayout(signed(weight_width), cols)))
        Weight tile rows.
    result : Out(stream.Signature(StructLayout({"psum": ..., "group": ..., "last": 1})))
        ``cols`` exact sums per beat; ``group`` is the output tile ``mt``
        (outputs ``mt*cols ...``).
    n_vectors, k_terms, m_outputs : In(unsigned)
        Problem size, sampled at ``start``.
    row_length : In(unsigned)
        Vectors per output row (``Q`` for a convolution; ``N`` for a plain
        matrix product). Blocks never cross a row boundary.
    chunks : In(unsigned)
        Reduction tiles per tap of a grouped problem; 0 or 1: dense.
    tile_map : In(ArrayLayout(tile_range_layout(config), chunk_max))
        Output tiles visited by each chunk of a grouped problem (held for the
        whole problem; ignored when dense).
    job : In(JobControl())
        ``job.start`` begins a problem (ignored while busy): the sizes are
        sampled, the first vector can be taken two cycles later. ``job.done``
        and ``job.error`` stay set until the next start. ``job.cancel`` is
        ignored: the conv core returns the engine to idle with a reset.
    counters : Out(engine_counters_layout())
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.rows, self.cols = config.array_rows, config.array_cols
        self.block = config.array_block
        #: Cycles from the array-input register stage to the array's sums:
        #: the input registers (after the buffer reads) plus the array.
        self.latency = self.rows + self.cols + 2
        #: Output FIFO depth: enough for every vector in flight plus slack,
        #: so a ready result stream never throttles the array.
        self.fifo_depth = self.latency + 4
        acc = signed(config.acc_width)
        #: Bits of the output-tile index carried with each result.
        self.group_bits = max(1, ceil_log2(-(-config.max_out_channels // self.cols)))
        self.chunk_max = -(-config.max_in_channels // self.rows)
        result = data.StructLayout({"psum": data.ArrayLayout(acc, self.cols),
                                    "group": self.group_bits, "last": 1})
        super().__init__({
            "act": In(stream.Signature(data.ArrayLayout(signed(config.act_width), self.rows))),
            "weights": In(stream.Signature(
                data.ArrayLayout(signed(config.weight_width), self.cols))),
            "result": Out(stream.Signature(result)),
            **layer_size_members(config, self.chunk_max),
            "job": In(JobControl()),
            "counters": Out(engine_counters_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        rows, cols, block, lat = self.rows, self.cols, self.block, self.latency
        m.submodules.array = array = SystolicArray(cfg)

        mt_max = -(-cfg.max_out_channels // cols)
        mt_bits = max(1, ceil_log2(mt_max))
        n_bits = max(1, ceil_log2(block))
        act_layout = data.ArrayLayout(signed(cfg.act_width), rows)
        acc_layout = data.ArrayLayout(signed(cfg.acc_width), cols)

        # Small: distributed RAM, so its read is fast enough to feed the
        # array-input multiplexer (a block RAM's unregistered output is not).
        m.submodules.act_buffer = act_buffer = Memory(shape=act_layout, depth=block, init=[],
                                                      attrs={"ram_style": "distributed"})
        act_write, act_read = act_buffer.write_port(), act_buffer.read_port()
        # Read latency 2 with the block RAM's own output register (on ECP5),
        # so the array's psum input starts from a register, not from the
        # RAM's slow output; writes come from registers already.
        m.submodules.acc_buffer = acc_buffer = BankedMemory(
            acc_layout, block << mt_bits, bank_depth=512, registered_write=False, ram_width=36)
        m.submodules.out_fifo = out_fifo = SyncFIFOBuffered(
            width=len(self.result.payload.as_value()), depth=self.fifo_depth)

        # ---- step position (registered facts of the current step) ----------
        m.submodules.sequencer = seq = TileSequencer(cfg, writeback=lat + 2)
        # The sizes are sampled at start; the sequencer begins a cycle later
        # from these registers (with the size check registered too), so its
        # wide start fan-out comes from flip-flops, not from compares.
        sizes = {name: Signal.like(getattr(self, name), name=f"{name}_held")
                 for name in ("k_terms", "m_outputs", "n_vectors", "row_length", "chunks")}
        m.d.comb += [getattr(seq, name).eq(held) for name, held in sizes.items()]
        m.d.comb += seq.tile_map.eq(self.tile_map)
        first_block = Signal.like(seq.first_block)
        m.d.comb += seq.first_block.eq(first_block)
        running = Signal()
        issued_all = seq.job.done
        n, mt, first = seq.n, seq.mt, seq.first
        last_kt, last_mt, last_block = seq.last_kt, seq.last_mt, seq.last_block
        to_output, from_stream = seq.to_output, seq.from_stream
        m_total = sizes["m_outputs"]            # for the issued-MAC counter

        inflight_acc = Signal(range(block * mt_max * 2 + lat + 4))
        # Free output-FIFO places not claimed by a vector in flight.
        credits = Signal(range(self.fifo_depth + 1), init=self.fifo_depth)
        # inflight_acc == 0 and credits != 0, kept as registers (see below) so
        # that the issue decision does not wait for two wide compares.
        acc_idle = Signal(init=1)
        credit_left = Signal(init=1)

        shadow_full = Signal()
        need_tile = Signal()

        # ---- issue decision (stage 0): flip-flops and a few gates ----------
        weights_ok = ~first | shadow_full
        drain_ok = ~(first & seq.has_sums & ~seq.spaced) | acc_idle
        credit_ok = ~to_output | credit_left
        settled = ~seq.step_end | seq.settled
        can_issue = running & ~issued_all & weights_ok & drain_ok & credit_ok & settled
        issue = Signal()
        m.d.comb += [
            seq.issue.eq(issue),
            self.act.ready.eq(can_issue & from_stream),
            issue.eq(can_issue & (~from_stream | self.act.valid)),
            act_read.addr.eq(n),
            acc_buffer.read_addr.eq((n << mt_bits) | mt),
        ]

        # ---- stage 1: array inputs ------------------------------------
        s1_valid = Signal()
        s1_swap = Signal()
        s1_from_stream = Signal()
        s1_zero = Signal()
        s1_act = Signal(act_layout, reset_less=True)     # data: s1_valid says
        meta_layout = data.StructLayout({
            "valid": 1, "to_output": 1, "last": 1, "addr": n_bits + mt_bits})
        s1_meta = Signal(meta_layout)
        m.d.sync += [
            s1_valid.eq(issue),
            s1_swap.eq(issue & first),
            s1_from_stream.eq(from_stream),
            s1_zero.eq(~seq.has_sums),
            s1_act.eq(self.act.payload),
            s1_meta.valid.eq(issue),
            s1_meta.to_output.eq(to_output),
            s1_meta.last.eq(last_kt & last_mt & last_block & seq.step_end),
            s1_meta.addr.eq((n << mt_bits) | mt),
        ]
        # The slice is kept for the step's other output tiles one cycle after
        # its issue (their reads come at least two cycles after the step ends).
        m.d.comb += [
            act_write.en.eq(s1_valid & s1_from_stream),
            act_write.addr.eq(s1_meta.addr[mt_bits:]),
            act_write.data.eq(s1_act),
        ]

        # ---- stage 2: registered array inputs (the buffer reads end here) --
        # The accumulator buffer's read data is a register at this stage; the
        # "start from zero" choice comes after it (the array's psum input is
        # itself registered by the skew line).
        s2_act = Signal(act_layout, reset_less=True)
        s2_psum = acc_buffer.read_data
        s2_valid, s2_zero = Signal(), Signal()
        m.d.sync += [
            s2_act.eq(Mux(s1_from_stream, s1_act, act_read.data)),
            s2_zero.eq(s1_zero),
            s2_valid.eq(s1_valid),
        ]
        m.d.comb += [
            array.act.eq(s2_act),
            array.act_valid.eq(s2_valid),
            # The swap goes one cycle ahead of the tile's first activation.
            array.swap.eq(s1_swap),
            array.psum_in.eq(Mux(s2_zero, 0, s2_psum)),
        ]

        # ---- outputs of the array ---------------------------------------
        meta = s1_meta
        for stage in range(lat):
            delayed = Signal(meta_layout, name=f"meta_d{stage + 1}")
            m.d.sync += delayed.eq(meta)
            meta = delayed
        to_fifo = meta.valid & meta.to_output
        to_acc = meta.valid & ~meta.to_output
        m.d.comb += [
            acc_buffer.write_en.eq(to_acc),
            acc_buffer.write_addr.eq(meta.addr),
            acc_buffer.write_data.eq(array.psum_out),
            out_fifo.w_en.eq(to_fifo),
        ]
        result_in = Signal(self.result.payload.shape())
        m.d.comb += [
            result_in.psum.eq(array.psum_out),
            result_in.last.eq(meta.last),
            result_in.group.eq(meta.addr[:mt_bits]),
            out_fifo.w_data.eq(result_in),
            self.result.valid.eq(out_fifo.r_rdy),
            self.result.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.result.ready),
        ]
        issue_acc = issue & ~to_output
        issue_out = issue & to_output
        popped = self.result.valid & self.result.ready
        m.d.sync += [
            inflight_acc.eq(inflight_acc + issue_acc - to_acc),
            credits.eq(credits - issue_out + popped),
            # The next values of the two flags, from compares of the current
            # counts (an acc issue and a write-back together leave a non-zero
            # count; so do an output issue and a pop together).
            acc_idle.eq(~issue_acc & Mux(to_acc, inflight_acc == 1, acc_idle)),
            credit_left.eq(popped | Mux(issue_out, credits != 1, credit_left)),
        ]

        with m.If(issue & first):
            # The step after this one needs its tile loaded.
            m.d.sync += need_tile.eq(~(last_kt & last_mt & last_block))

        # ---- weight loader --------------------------------------------
        # A new tile may enter the shadow registers only after the previous
        # swap has crossed every column (guard), see systolic_array.
        guard = Signal(range(cols + 2))
        load_row = Signal(range(rows))
        load_enable = running & need_tile & ~shadow_full & (guard == 0)
        loaded = self.weights.valid & load_enable
        m.d.comb += self.weights.ready.eq(load_enable)
        m.d.sync += [
            array.wload_valid.eq(loaded),
            array.wload_row.eq(load_row),
            array.wload_data.eq(self.weights.payload),
        ]
        with m.If(loaded):
            with m.If(load_row == rows - 1):
                m.d.sync += [load_row.eq(0), shadow_full.eq(1), need_tile.eq(0)]
            with m.Else():
                m.d.sync += load_row.eq(load_row + 1)
        # The tile is consumed the moment its first vector issues (not a cycle
        # later at the array), or a one-vector step would reuse it.
        with m.If(issue & first):
            m.d.sync += [shadow_full.eq(0), guard.eq(cols)]
        with m.Elif(guard != 0):
            m.d.sync += guard.eq(guard - 1)

        # ---- start / done / error ---------------------------------------
        finished = self.result.valid & self.result.ready & self.result.payload.last
        bad = ((self.n_vectors == 0) | above(self.n_vectors, cfg.max_vectors)
               | (self.row_length == 0) | above(self.chunks, self.chunk_max)
               | (self.k_terms == 0) | above(self.k_terms, cfg.max_reduction)
               | (self.m_outputs == 0) | above(self.m_outputs, cfg.max_out_channels))
        begin, bad_held = Signal(), Signal()      # the cycle after start
        m.d.comb += self.job.busy.eq(running | begin)
        m.d.sync += begin.eq(0)
        with m.If(self.job.start & ~self.job.busy):
            m.d.sync += [begin.eq(1), bad_held.eq(bad), self.job.done.eq(0), self.job.error.eq(0)]
            m.d.sync += [held.eq(getattr(self, name)) for name, held in sizes.items()]
            m.d.sync += first_block.eq(smallest_of(self.n_vectors, self.row_length, block)[0])
        with m.If(begin):
            m.d.sync += [self.job.done.eq(bad_held), self.job.error.eq(bad_held)]
            m.d.comb += seq.job.start.eq(~bad_held)
            with m.If(~bad_held):
                m.d.sync += [running.eq(1), need_tile.eq(1)]
        with m.Elif(running & finished):
            m.d.sync += [running.eq(0), self.job.done.eq(1)]

        # ---- performance counters --------------------------------------
        # The issue decision's outcome is registered first, so the counters'
        # adders do not sit behind it.
        valid_rows = Mux(last_kt, seq.k_left, rows)
        cols_left = Signal(range(-cols * mt_max, cfg.max_out_channels + 1))
        m.d.comb += cols_left.eq(m_total - times_constant(mt, cols))
        valid_cols = Mux(cols_left < cols, cols_left, cols)
        event = Signal(data.StructLayout({
            "busy": 1, "issue": 1, "weight": 1, "drain": 1, "output": 1, "input": 1}))
        issued_rows = Signal(range(rows + 1))       # 0 when nothing issued
        issued_cols = Signal(range(cols + 1))
        issued = Signal(range(rows * cols + 1))     # a cycle behind the events
        m.d.sync += [
            event.busy.eq(running), event.issue.eq(issue),
            # A step of one or two vectors waiting for the next one to be
            # worked out counts as waiting for weights (its tile load hides it).
            event.weight.eq(running & ~issue & ~issued_all & (~weights_ok | ~settled)),
            event.drain.eq(running & ~issue & ~issued_all & weights_ok & settled & ~drain_ok),
            event.output.eq(running & ~issue & Mux(
                issued_all, self.result.valid & ~self.result.ready,
                weights_ok & settled & drain_ok & ~credit_ok)),
            event.input.eq(running & ~issue & ~issued_all & weights_ok & drain_ok & credit_ok
                           & settled),
            issued_rows.eq(Mux(issue, valid_rows, 0)), issued_cols.eq(valid_cols),
            issued.eq(times_small(issued_rows, issued_cols)),
        ]
        ctr = self.counters
        with m.If(begin & ~bad_held):
            m.d.sync += self.counters.eq(0)
        with m.Else():
            m.d.sync += [
                ctr.busy_cycles.eq(ctr.busy_cycles + event.busy),
                ctr.active_cycles.eq(ctr.active_cycles + event.issue),
                ctr.issued_macs.eq(ctr.issued_macs + issued),
                ctr.weight_stall.eq(ctr.weight_stall + event.weight),
                ctr.drain_stall.eq(ctr.drain_stall + event.drain),
                ctr.output_stall.eq(ctr.output_stall + event.output),
                ctr.input_stall.eq(ctr.input_stall + event.input),
            ]
        return m
