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
  ``W[kt*rows+i][mt*cols : mt*cols+cols]``, the ``L`` beats of one block;
  with a weight buffer (``weight_buffer_depth = D > 0``,
  :mod:`convaccel.hw.weight_buffer`) the first block's ``L`` beats and then,
  per further block, only its beats ``D ... L - 1`` (none if ``L <= D``);
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
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .array_drain import ArrayDrain, engine_result_layout
from .stage_payloads import lane_beat_layout
from .array_feed import ArrayFeed
from .banked_memory import BankedMemory
from .config import AccelConfig, checked_config
from .engine_counters import EngineCounters, engine_counters_layout
from .engine_start import SIZE_NAMES, EngineStart
from .helpers import times_constant
from .issue_credits import IssueCredits
from .issue_gate import IssueGate
from .job_control import JobControl
from .tile_sequencer import TileSequencer, layer_size_members
from .weight_buffer import WeightBuffer
from .weight_loader import WeightLoader
from .systolic_array import SystolicArray, array_latency

__all__ = ["SystolicEngine", "engine_counters_layout"]


class SystolicEngine(wiring.Component):
    """Systolic array with tiling sequencer, buffers, streams and counters.

    Parameters
    ----------
    config : AccelConfig
        Array size, ``array_block``, widths and maxima.

    Attributes
    ----------
    act : In(stream.Signature(lane_beat_layout(config, rows)))
        Activation slices (order in the module docstring) in ``data``;
        ``last`` is not used (the problem's size says where it ends).
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
        self.latency = array_latency(config) + 1
        #: Output FIFO depth: enough for every vector in flight plus slack,
        #: so a ready result stream never throttles the array (the places
        #: cover the round trip from issue through the registered FIFO write).
        self.fifo_depth = self.latency + 5
        self.chunk_max = -(-config.max_in_channels // self.rows)
        super().__init__({
            "act": In(stream.Signature(lane_beat_layout(config, self.rows))),
            "weights": In(stream.Signature(
                data.ArrayLayout(signed(config.weight_width), self.cols))),
            "result": Out(stream.Signature(engine_result_layout(config))),
            **layer_size_members(config, self.chunk_max),
            "job": In(JobControl()),
            "counters": Out(engine_counters_layout()),
        })
        #: The registered issue decision and the same rule on this cycle's
        #: facts (:mod:`convaccel.hw.issue_gate`; tests check they are equal).
        self.issue_gate, self.issue_check = Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        rows, cols, block, lat = self.rows, self.cols, self.block, self.latency
        m.submodules.array = array = SystolicArray(cfg)

        mt_max = -(-cfg.max_out_channels // cols)
        mt_bits = max(1, ceil_log2(mt_max))
        acc_layout = data.ArrayLayout(signed(cfg.acc_width), cols)

        # Read latency 2 with the block RAM's own output register (on ECP5),
        # so the array's psum input starts from a register, not from the
        # RAM's slow output; writes come from registers already.
        m.submodules.acc_buffer = acc_buffer = BankedMemory(
            acc_layout, block << mt_bits, bank_depth=512, registered_write=False, ram_width=36)

        # ---- step position (registered facts of the current step) ----------
        m.submodules.sequencer = seq = TileSequencer(cfg, writeback=lat + 2)
        m.submodules.start = start = EngineStart(cfg, self.chunk_max)
        wiring.connect(m, wiring.flipped(self.job), start.job)
        m.d.comb += [getattr(start, name).eq(getattr(self, name)) for name in SIZE_NAMES]
        m.d.comb += [getattr(seq, name).eq(getattr(start.held, name)) for name in SIZE_NAMES]
        m.d.comb += [seq.tile_map.eq(self.tile_map), seq.first_block.eq(start.first_block)]
        running = start.running
        issued_all = seq.job.done
        n, mt, first = seq.n, seq.mt, seq.first
        last_kt, last_mt, last_block = seq.last_kt, seq.last_mt, seq.last_block
        to_output, from_stream = seq.to_output, seq.from_stream

        m.submodules.issue_credits = credits = IssueCredits(
            max_in_flight=block * mt_max * 2 + lat + 4, places=self.fifo_depth)

        m.submodules.loader = loader = WeightLoader(cfg)

        # ---- issue decision (stage 0): a flip-flop and a gate ------------
        m.submodules.issue_gate = gate = IssueGate()
        issue = gate.issue
        m.d.comb += [getattr(gate.now, name).eq(getattr(seq, name)) for name in (
            "first", "step_end", "to_output", "has_sums", "spaced", "settled")]
        m.d.comb += [getattr(gate, name).eq(getattr(unit, name)) for unit, names in (
            (loader, ("full", "full_unless_consumed")),
            (credits, ("acc_idle", "acc_idle_unless_issued", "credit_left",
                       "credit_left_unless_issued", "credit_left_if_issued")),
            (seq, ("next_if_idle", "next_if_issue", "from_stream"))) for name in names]
        m.d.comb += [
            gate.now.done.eq(issued_all), gate.running.eq(running),
            gate.act_valid.eq(self.act.valid), self.act.ready.eq(gate.act_ready),
            self.issue_gate.eq(gate.go), self.issue_check.eq(gate.check),
            seq.issue.eq(issue),
            acc_buffer.read_addr.eq((n << mt_bits) | mt),
        ]

        # ---- stages 1 and 2: the array's registered inputs ---------------
        m.submodules.feed = feed = ArrayFeed(cfg)
        m.d.comb += [
            feed.issued.valid.eq(issue), feed.issued.to_output.eq(to_output),
            feed.issued.last.eq(last_kt & last_mt & last_block & seq.step_end),
            feed.issued.addr.eq((n << mt_bits) | mt),
            feed.swap.eq(first), feed.from_stream.eq(from_stream), feed.zero.eq(~seq.has_sums),
            feed.act.eq(self.act.payload.data), feed.psum.eq(acc_buffer.read_data),
            array.act.eq(feed.array_act), array.act_valid.eq(feed.array_act_valid),
            array.swap.eq(feed.array_swap), array.psum_in.eq(feed.array_psum),
        ]

        # ---- the array's sums: write-back or result FIFO -----------------
        m.submodules.drain = drain = ArrayDrain(cfg, latency=lat, depth=self.fifo_depth)
        m.d.comb += [
            drain.issued.eq(feed.meta), drain.sums.eq(array.psum_out),
            acc_buffer.write_en.eq(drain.write_en),
            acc_buffer.write_addr.eq(drain.write_addr),
            acc_buffer.write_data.eq(drain.write_data),
        ]
        wiring.connect(m, drain.result, wiring.flipped(self.result))
        m.d.comb += [
            credits.issue_acc.eq(issue & ~to_output), credits.written.eq(drain.write_en),
            credits.issue_out.eq(issue & to_output),
            credits.popped.eq(self.result.valid & self.result.ready),
        ]

        # The tile is consumed the moment its first vector issues (not a cycle
        # later at the array), or a one-vector step would reuse it.
        m.d.comb += [
            loader.consume.eq(issue & first),
            loader.more.eq(~(last_kt & last_mt & last_block)),
            array.wload_valid.eq(loader.wload_valid),
            array.wload_row.eq(loader.wload_row),
            array.wload_data.eq(loader.wload_data),
        ]
        weights = wiring.flipped(self.weights)
        if cfg.weight_buffer_depth:
            m.submodules.weight_buffer = buffer = WeightBuffer(
                self.weights.payload.shape(), cfg.weight_buffer_depth, cfg.weight_beats_per_block,
                rows)
            m.d.comb += [buffer.start.eq(start.launch),
                         buffer.want_tile.eq(loader.consume & loader.more),
                         buffer.block_end.eq(issue & first & last_kt & last_mt)]
            wiring.connect(m, weights, buffer.i)
            weights = buffer.o
        wiring.connect(m, weights, loader.weights)

        m.d.comb += [
            start.finished.eq(self.result.valid & self.result.ready & self.result.payload.last),
            seq.job.start.eq(start.launch), loader.first_tile.eq(start.launch),
        ]

        self._counters(m, seq, start, gate, mt_max)
        return m

    def _counters(self, m, seq, start, gate, mt_max):
        """The performance counters: the MACs each issue does, and the stall causes."""
        rows, cols = self.rows, self.cols
        valid_rows = Mux(seq.last_kt, seq.k_left, rows)
        cols_left = Signal(range(-cols * mt_max, self.config.max_out_channels + 1))
        m.d.comb += cols_left.eq(start.held.m_outputs - times_constant(seq.mt, cols))
        m.submodules.engine_counters = counters = EngineCounters(self.config)
        status = counters.status
        m.d.comb += [
            counters.clear.eq(start.launch),
            counters.rows.eq(valid_rows),
            counters.cols.eq(Mux(cols_left < cols, cols_left, cols)),
            status.running.eq(start.running), status.issue.eq(gate.issue),
            status.issued_all.eq(seq.job.done),
            *[getattr(status, name).eq(getattr(gate.terms, name))
              for name in ("weights_ok", "drain_ok", "credit_ok", "settled")],
            status.out_blocked.eq(self.result.valid & ~self.result.ready),
            self.counters.eq(counters.counters),
        ]

