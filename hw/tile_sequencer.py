"""The systolic engine's step order, with every test the issue decision needs in a register.

A *step* is one visit of an output tile ``mt`` by one reduction tile ``kt``:
``block_size`` vectors ``n = 0 .. block_size - 1`` streamed with one weight
tile. Steps come in the order of :mod:`convaccel.hw.systolic_engine`: per
block of positions (cut at ``array_block`` and at row ends), per reduction
tile, per visited output tile.

The engine decides each cycle whether to issue the current vector; that
decision must not wait for wide compares. So the sequencer keeps the current
step's facts as flip-flops (``first``, ``step_end``, ``last_mt``, ``last_kt``,
``last_block``, ``to_output``, ``from_stream``, ``has_sums``, ``spaced``) and
works out the *next* step in two registered stages while the current one
runs:

* stage A, from the current step's registers: the next step's ``mt``,
  ``chunk``, remaining reduction terms, positions and row;
* stage B, from stage A: the next step's block size and its flags.

At the last issue of a step the stage-B registers become the current step.
Both stages need a cycle each after a step begins, so a step may end only
two cycles after it began (``settled``): steps of one or two vectors (rows of
one or two outputs, fully connected layers) wait up to two cycles, which
their weight-tile loads hide.

``spaced`` (the accumulator write-back rule) counts clock cycles since each
tile's last issue, not issues: the array never stalls, so a partial sum is
written back a fixed number of cycles after its vector issued, whatever
happened in between. Stage B reads the count a cycle before the transition,
when it is exactly one less than at the transition; a step whose first
vector waits (for its weight tile) re-checks the rule every cycle.
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .group_tiles import tile_range_layout
from .helpers import above, smallest_of, times_constant
from .job_control import JobControl

__all__ = ["TileSequencer", "layer_size_members", "step_facts_layout"]

#: The step facts the engine's issue decision reads: the current step's, or
#: the next cycle's (``done``: the problem's last vector has issued).
step_facts_layout = data.StructLayout({
    "first": 1, "step_end": 1, "to_output": 1, "has_sums": 1, "spaced": 1, "settled": 1,
    "done": 1})


def layer_size_members(config: AccelConfig, chunk_max: int) -> dict:
    """The layer-size inputs the engine takes and hands to its sequencer."""
    return {
        "n_vectors": In(range(config.max_vectors + 1)),
        "row_length": In(range(config.max_vectors + 1)),
        "k_terms": In(range(config.max_reduction + 1)),
        "m_outputs": In(range(config.max_out_channels + 1)),
        "chunks": In(range(chunk_max + 1)),
        "tile_map": In(data.ArrayLayout(tile_range_layout(config), chunk_max)),
    }


class TileSequencer(wiring.Component):
    """Step position and registered step facts of the systolic engine.

    Parameters
    ----------
    config : AccelConfig
    writeback : int
        Issues between reading a partial sum and its write-back (the engine's
        pipeline); a tile's next visit must be at least this far behind.

    Attributes
    ----------
    job : In(JobControl())
        ``job.start`` loads the problem (``k_terms``, ``m_outputs``,
        ``n_vectors``, ``row_length``, ``chunks``, ``tile_map``) and begins at
        its first step, busy or not (the engine starts it only when idle).
        ``job.done``: the last vector of the problem has issued; ``job.busy``
        from the cycle after start until then. ``job.cancel`` is ignored and
        ``job.error`` stays 0: the engine checks the sizes before it starts
        the sequencer and returns it to idle with its own reset.
    first_block : In(unsigned)
        The first block's size, ``min(n_vectors, row_length, array_block)``,
        worked out by the caller (a register, so ``start`` loads no compare
        chain).
    issue : In(1)
        The current vector issued this cycle.
    n, mt : Out(unsigned)
        Current vector within the step and output tile.
    k_left : Out(unsigned)
        Reduction terms from the current reduction tile on.
    first, step_end, last_mt, last_kt, last_block : Out(1)
        Facts of the current step (``step_end``: the current vector is its last).
    to_output, from_stream, has_sums, spaced : Out(1)
        The step's sums leave for the output; its slices come from the stream
        (else the activation buffer); the tile already holds sums in this
        block; its previous visit is at least ``writeback`` issues back.
    settled : Out(1)
        The next step is worked out: the current step may end.
    next_if_idle, next_if_issue : Out(step_facts_layout)
        The step facts of the next cycle if the current vector does not
        issue this cycle, and if it does: the engine registers its issue
        decision a cycle ahead from these (meaningless while ``done``).
    """

    def __init__(self, config: AccelConfig, *, writeback: int):
        checked_config(config)
        self.config = config
        self.writeback = writeback
        self.rows, self.cols, self.block = config.array_rows, config.array_cols, config.array_block
        self.mt_max = -(-config.max_out_channels // self.cols)
        self.chunk_max = -(-config.max_in_channels // self.rows)
        super().__init__({
            "job": In(JobControl()),
            **layer_size_members(config, self.chunk_max),
            "first_block": In(range(self.block + 1)),
            "issue": In(1),
            "n": Out(range(max(2, self.block))),
            "mt": Out(max(1, ceil_log2(self.mt_max))),
            "k_left": Out(range(config.max_reduction + 1)),
            "first": Out(1), "step_end": Out(1),
            "last_mt": Out(1), "last_kt": Out(1), "last_block": Out(1),
            "to_output": Out(1), "from_stream": Out(1), "has_sums": Out(1), "spaced": Out(1),
            "settled": Out(1),
            "next_if_idle": Out(step_facts_layout), "next_if_issue": Out(step_facts_layout),
        })

    def elaborate(self, platform):
        m = Module()
        r = self._registers(m)
        a = self._stage_a(m, r)
        b = self._stage_b(m, r, a)
        self._current_step(m, r, b)
        self._next_facts(m, r, b)
        with m.If(self.job.start):
            self._begin(m, r)
        return m

    def _registers(self, m):
        """The problem's registers and the current step's (beyond the ports)."""
        cfg, rows = self.config, self.rows
        # Named, so waveforms and timing reports show what they are.
        r = SimpleNamespace(
            k_total=Signal.like(self.k_terms, name="k_total"),
            m_last_base=Signal(range(-self.cols, cfg.max_out_channels + 1),
                               name="m_last_base"),                       # M - cols
            chunk_total=Signal.like(self.chunks, name="chunk_total"),
            tap_terms=Signal(range(self.chunk_max * rows + 1), name="tap_terms"),  # chunks*rows
            row_total=Signal.like(self.row_length, name="row_total"),
            grouped=Signal(name="grouped"),
            chunk=Signal(range(max(2, self.chunk_max)), name="chunk"),
            # Positions from this block on, and left in this output row.
            n_left=Signal.like(self.n_vectors, name="n_left"),
            row_left=Signal.like(self.row_length, name="row_left"),
            block_size=Signal.like(self.n_vectors, name="block_size"),
            # Vectors of the step still to issue, and "remaining == 2" (the
            # next issue ends the step), a register for the issue decision.
            remaining=Signal.like(self.n_vectors, name="remaining"),
            two_left=Signal(name="two_left"),
            # Tiles with sums in this block (before mt).
            seen=Signal(self.mt_max, name="seen"),
            # Cycles since each tile's last issue (saturating at writeback).
            since=Signal(data.ArrayLayout(range(self.writeback + 1), self.mt_max), name="since"),
            settle=Signal(range(3), name="settle"),
            # since[t] >= spacing_m2 per tile, and since[mt] > spacing_m2 of
            # the current tile from three registers (see _spacing_flags).
            spaced_at=Signal(self.mt_max, name="spaced_at"),
            spaced_now=Signal(name="spaced_now"),
            spaced_fresh=Signal(name="spaced_fresh"),
            spaced_reset=Signal(name="spaced_reset"),
            # block_size >= writeback: no wait at all.
            big_block=Signal(name="big_block"),
            # writeback - 3 - block_size and writeback - 2 - block_size, set
            # with block_size (at most array_block; see _spacing_flags).
            at_threshold=Signal(range(self.writeback - 3 - self.block, self.writeback),
                                name="at_threshold"),
            past_threshold=Signal(range(self.writeback - 2 - self.block, self.writeback),
                                  name="past_threshold"),
        )
        r.next_chunk = Signal.like(r.chunk, name="next_chunk")   # the chunk after the current one
        r.chunk_last = Signal.like(r.chunk, name="chunk_last")   # chunks - 1 (when grouped)
        m.d.comb += [r.grouped.eq(above(r.chunk_total, 1)), self.settled.eq(r.settle == 0)]
        # The next visit's vector n comes at least since + 1 + block_size
        # cycles after the last visit's vector n, and must come writeback
        # cycles after it: since >= writeback - 1 - block_size at the
        # transition, i.e. since >= spacing_m2 a cycle before it.
        # spacing_m2 (= writeback - 2 - block_size) and big_block follow
        # block_size a cycle late: they are read from the second cycle of a
        # step on (stage B; a new block's first step has no sums, so its wait
        # check is off), when they hold the step's block size.
        m.d.sync += r.big_block.eq(r.block_size >= self.writeback)
        return r

    def _stage_a(self, m, r):
        """Stage A: the next step's position, from the current step's registers.

        The chunk after the current one is a register (worked out in stage
        B with the step), so the tile map is read straight from it; the
        chunk after ``a.chunk`` (0 after the last, and always 0 when dense)
        is worked out here, so stage B reads the tile map at a register too.
        """
        a = Signal(data.StructLayout({
            "kind": 2,            # 0: next tile, 1: next reduction tile, 2: next block
            "mt": len(self.mt), "chunk": len(r.chunk), "chunk_after": len(r.chunk),
            "k_left": len(self.k_left), "n_left": len(r.n_left), "row_left": len(r.row_left)}))
        next_chunk, grouped = r.next_chunk, r.grouped
        next_lo = Mux(grouped, self.tile_map[next_chunk].lo, 0)
        with m.If(~self.last_mt):
            m.d.sync += [a.kind.eq(0), a.mt.eq(self.mt + 1), a.chunk.eq(r.chunk),
                         a.chunk_after.eq(next_chunk),
                         a.k_left.eq(self.k_left), a.n_left.eq(r.n_left),
                         a.row_left.eq(r.row_left)]
        with m.Elif(~self.last_kt):
            m.d.sync += [a.kind.eq(1), a.mt.eq(next_lo), a.chunk.eq(next_chunk),
                         a.chunk_after.eq(Mux((next_chunk == r.chunk_last) | ~grouped, 0,
                                              next_chunk + 1)),
                         a.k_left.eq(self.k_left - self.rows), a.n_left.eq(r.n_left),
                         a.row_left.eq(r.row_left)]
        with m.Else():
            m.d.sync += [a.kind.eq(2), a.mt.eq(0), a.chunk.eq(0), a.chunk_after.eq(grouped),
                         a.k_left.eq(r.k_total),
                         a.n_left.eq(r.n_left - r.block_size),
                         a.row_left.eq(Mux(r.row_left == r.block_size, r.row_total,
                                           r.row_left - r.block_size))]
        return a

    def _stage_b(self, m, r, a):
        """Stage B: the next step's size and facts, from stage A."""
        rows, grouped = self.rows, r.grouped
        b = Signal(data.StructLayout({
            "kind": 2, "mt": len(self.mt), "chunk": len(r.chunk), "next_chunk": len(r.chunk),
            "k_left": len(self.k_left), "n_left": len(r.n_left), "row_left": len(r.row_left),
            "block_size": len(r.block_size), "size_one": 1, "size_two": 1,
            "last_mt": 1, "last_kt": 1, "last_block": 1, "to_output": 1, "has_sums": 1,
            "spaced": 1}))
        # The next block: up to `block` positions, within the row and the problem.
        next_size, block_is_last = smallest_of(a.n_left, a.row_left, self.block)
        # min(n_left, row_left, block) is 1 (2) when one of them is and none
        # is smaller (all are >= 1 when the block is used): no compare after
        # the min.
        any_one = (a.n_left == 1) | (a.row_left == 1) | int(self.block == 1)
        any_two = (a.n_left == 2) | (a.row_left == 2) | int(self.block == 2)
        visits = self.tile_map[a.chunk]
        after_next = self.tile_map[a.chunk_after]
        # The write-back rule for the next visit: it shares this block's size
        # (a new block has no sums to wait for), so the threshold is a register.
        spaced_next = Mux(a.mt == self.mt, r.big_block, r.spaced_at.bit_select(a.mt, 1))
        m.d.sync += [
            b.kind.eq(a.kind), b.mt.eq(a.mt), b.chunk.eq(a.chunk), b.k_left.eq(a.k_left),
            b.next_chunk.eq(a.chunk_after),
            b.n_left.eq(a.n_left), b.row_left.eq(a.row_left),
            b.block_size.eq(Mux(a.kind == 2, next_size, r.block_size)),
            b.size_one.eq(Mux(a.kind == 2, any_one, r.block_size == 1)),
            b.size_two.eq(Mux(a.kind == 2, ~any_one & any_two, r.block_size == 2)),
            b.last_mt.eq(Mux(grouped, a.mt == visits.hi,
                             times_constant(a.mt, self.cols) >= r.m_last_base)),
            b.last_kt.eq(a.k_left <= rows),
            b.last_block.eq(Mux(a.kind == 2, block_is_last, self.last_block)),
            b.to_output.eq(Mux(grouped, (a.k_left <= r.tap_terms)
                               & ((a.chunk_after == 0) | (after_next.lo > a.mt)),
                               a.k_left <= rows)),
            b.has_sums.eq((a.kind != 2) & ((a.mt == self.mt) | r.seen.bit_select(a.mt, 1))),
            b.spaced.eq((a.kind == 2) | spaced_next),
        ]
        return b

    def _current_step(self, m, r, b):
        """The current step's updates: the next vector, or the next step from stage B."""
        for tile in range(self.mt_max):
            with m.If(self.issue & (self.mt == tile)):
                m.d.sync += r.since[tile].eq(0)
            with m.Elif(r.since[tile] < self.writeback):
                m.d.sync += r.since[tile].eq(r.since[tile] + 1)
        self._spacing_flags(m, r, b)
        # A step waiting for its first issue (for weights, say) becomes
        # spaced once enough cycles have passed: the new visit's vector n
        # issues at t + n or later and needs since + block_size >= writeback
        # at t, i.e. since[mt] > spacing_m2 a cycle before (_spaced_past_now).
        with m.If(self.first & ~self.spaced):
            m.d.sync += self.spaced.eq(self._spaced_past_now(r))
        with m.If(self.issue):
            with m.If(~self.step_end):
                m.d.sync += [self.n.eq(self.n + 1), r.remaining.eq(r.remaining - 1),
                             r.two_left.eq(r.remaining == 3),
                             self.first.eq(0), self.step_end.eq(r.two_left)]
            with m.Elif(self.last_mt & self.last_kt & self.last_block):
                m.d.sync += [self.job.done.eq(1), self.job.busy.eq(0)]
            with m.Else():
                m.d.sync += [
                    self.n.eq(0), self.first.eq(1), self.mt.eq(b.mt), r.chunk.eq(b.chunk),
                    r.next_chunk.eq(b.next_chunk),
                    self.k_left.eq(b.k_left), r.n_left.eq(b.n_left), r.row_left.eq(b.row_left),
                    r.block_size.eq(b.block_size), r.remaining.eq(b.block_size),
                    r.two_left.eq(b.size_two), *self._thresholds(r, b.block_size),
                    self.step_end.eq(b.size_one),
                    self.last_mt.eq(b.last_mt), self.last_kt.eq(b.last_kt),
                    self.last_block.eq(b.last_block), self.to_output.eq(b.to_output),
                    self.from_stream.eq(b.kind != 0), self.has_sums.eq(b.has_sums),
                    self.spaced.eq(b.spaced),
                    r.seen.eq(Mux(b.kind == 2, 0, r.seen | (1 << self.mt))),
                    r.settle.eq(2),
                ]
        with m.If(r.settle != 0):
            m.d.sync += r.settle.eq(r.settle - 1)

    def _next_facts(self, m, r, b):
        """``next_if_idle`` and ``next_if_issue``: what the updates above will leave."""
        idle, issued = self.next_if_idle, self.next_if_issue
        settle = r.settle
        m.d.comb += [
            idle.first.eq(self.first), idle.step_end.eq(self.step_end),
            idle.to_output.eq(self.to_output), idle.has_sums.eq(self.has_sums),
            idle.spaced.eq(Mux(self.first & ~self.spaced, self._spaced_past_now(r),
                               self.spaced)),
            idle.settled.eq(settle <= 1), idle.done.eq(self.job.done),
        ]
        with m.If(~self.step_end):          # the next vector of this step
            m.d.comb += [issued.step_end.eq(r.two_left), issued.to_output.eq(self.to_output),
                         issued.has_sums.eq(self.has_sums), issued.spaced.eq(1),
                         issued.settled.eq(settle <= 1)]
        with m.Elif(self.last_mt & self.last_kt & self.last_block):
            m.d.comb += issued.done.eq(1)
        with m.Else():                      # the next step, from stage B; settled is 0
            m.d.comb += [issued.first.eq(1), issued.step_end.eq(b.size_one),
                         issued.to_output.eq(b.to_output), issued.has_sums.eq(b.has_sums),
                         issued.spaced.eq(b.spaced)]

    def _spacing_flags(self, m, r, b):
        """Next cycle's ``since[t] >= spacing_m2``, and the registers of ``since[mt] > spacing_m2``.

        With ``spacing_m2 = writeback - 2 - block_size`` (of this cycle's
        block size: it is the next cycle's threshold) and the next ``since``:
        0 after an issue of the tile or a start, else ``since + 1`` up to
        ``writeback`` (then both hold). The issue picks between two results
        at the end, so it does not wait for the adds.

        ``since[mt] > spacing_m2`` (the current tile's) is kept without a
        multiplexer of tiles after the late issue: with no issue or start
        last cycle (``spaced_fresh``), it is ``spaced_at[mt]`` of last cycle
        (``since`` has grown by one since; ``spaced_now``). After one, it is
        the reset value when the tile is the one that issued, or after a
        start (``spaced_reset``); after the last issue of a step that moves
        to another tile it is stage B's ``spaced``, already the step's, and
        never read.
        """
        wb, since = self.writeback, r.since
        # since + 1 (>, >=) wb - 2 - block_size is since >= the thresholds,
        # registers set with block_size: one compare, no add before it.
        zero_at = r.past_threshold <= 0         # 0 >= spacing_m2
        zero_past = r.past_threshold < 0        # 0 > spacing_m2
        for tile in range(self.mt_max):
            held = since[tile] >= wb
            at = held | (since[tile] >= r.at_threshold)
            reset = self.job.start | (self.issue & (self.mt == tile))
            m.d.sync += r.spaced_at[tile].eq(Mux(reset, zero_at, at))
        new_tile = (self.step_end & ~(self.last_mt & self.last_kt & self.last_block)
                    & (b.mt != self.mt))
        m.d.sync += [
            r.spaced_now.eq(r.spaced_at.bit_select(self.mt, 1)),
            r.spaced_fresh.eq(~self.issue & ~self.job.start),
            r.spaced_reset.eq(zero_past & (self.job.start | ~new_tile)),
        ]

    @staticmethod
    def _spaced_past_now(r):
        """``since[mt] > spacing_m2`` from registers alone (see _spacing_flags)."""
        return Mux(r.spaced_fresh, r.spaced_now, r.spaced_reset)

    def _thresholds(self, r, block_size):
        """Assignments of the write-back thresholds for a step of ``block_size``."""
        return [r.at_threshold.eq(self.writeback - 3 - block_size),
                r.past_threshold.eq(self.writeback - 2 - block_size)]

    def _begin(self, m, r):
        """The problem's first step; its facts are worked out like stage B's."""
        rows, cols, block = self.rows, self.cols, self.block
        size = self.first_block
        grouped = above(self.chunks, 1)
        visits, after = self.tile_map[0], self.tile_map[Mux(grouped, 1, 0)]
        m.d.sync += [
            r.k_total.eq(self.k_terms), r.m_last_base.eq(self.m_outputs - cols),
            r.chunk_total.eq(self.chunks), r.tap_terms.eq(times_constant(self.chunks, rows)),
            r.row_total.eq(self.row_length),
            r.chunk.eq(0), self.mt.eq(0), self.n.eq(0), self.k_left.eq(self.k_terms),
            r.n_left.eq(self.n_vectors), r.row_left.eq(self.row_length),
            r.block_size.eq(size), r.remaining.eq(size), self.first.eq(1),
            *self._thresholds(r, size),
            self.step_end.eq(size == 1), r.two_left.eq(size == 2),
            self.last_mt.eq(Mux(grouped, visits.hi == 0, self.m_outputs <= cols)),
            self.last_kt.eq(self.k_terms <= rows),
            self.last_block.eq((self.n_vectors <= self.row_length) & (self.n_vectors <= block)),
            self.to_output.eq(Mux(grouped, (self.k_terms <= times_constant(self.chunks, rows))
                                  & ((self.chunks == 1) | (after.lo > 0)),
                                  self.k_terms <= rows)),
            self.from_stream.eq(1), self.has_sums.eq(0), self.spaced.eq(1),
            r.seen.eq(0), r.since.eq(0), r.settle.eq(2), self.job.done.eq(0), self.job.busy.eq(1),
            r.next_chunk.eq(grouped), r.chunk_last.eq(self.chunks - 1),   # chunk 0's successor
        ]
