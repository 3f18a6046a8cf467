"""On-chip weight buffer: the weight stream crosses the bus once per layer.

The engine visits the same weight tiles in the same order for every block of
output positions (:mod:`convaccel.hw.systolic_engine`), so the ``L`` weight
beats of one block are the whole layer's weights. The buffer sits between the
weight stream and the engine's tile loader:

* **first block (record)**: beats pass straight through, and the first
  ``depth`` of them are written to a block RAM;
* **later blocks (replay)**: beat ``r`` of the block (``0 <= r < L``) comes
  from the RAM when ``r < depth``, otherwise from the stream again.

So the host sends the block's ``L`` beats once and then, for each further
block, only beats ``depth ... L - 1`` (none when the layer's weights fit).
:func:`convaccel.host.streams.weight_lanes` builds that stream.

``L`` is learnt, not configured: ``block_end`` marks the cycle the last tile
of a block is consumed by the engine, and its first pulse of a problem ends
the recording. Until then the loader has taken exactly the block's beats (it
takes a tile only after the previous one is consumed), and the stream is not
read ahead, so a beat of the next block or layer is never taken early.
Beats from the RAM are read ahead into a small register FIFO (the RAM's read
latency is 2, its output registered); stream beats in replay pass straight
through like recorded ones, so the stream is only read on the loader's
demand. ``start`` (the engine's problem start) returns to recording.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .banked_memory import BankedMemory
from .register_fifo import RegisterFIFO

__all__ = ["WeightBuffer"]


class WeightBuffer(wiring.Component):
    """Record-once, replay-per-block buffer of the weight stream (see the module).

    Parameters
    ----------
    shape : shape-like
        One weight beat (``array_cols`` weights).
    depth : int
        Beats the RAM holds (the config's ``weight_buffer_depth``, >= 1).
    max_beats : int
        Largest number of beats per block the engine can ask for (sizes the
        counters).

    Attributes
    ----------
    i : In(stream.Signature(shape))
        The weight stream (``L`` beats, then ``L - depth`` per further block).
    o : Out(stream.Signature(shape))
        Every block's ``L`` beats, to the tile loader.
    start : In(1)
        A problem starts: record from the next beat on.
    block_end : In(1)
        The last tile of a block is consumed (ends the recording).
    """

    #: Read-ahead FIFO entries (covers the RAM's read latency of 2).
    AHEAD = 4

    def __init__(self, shape, depth: int, max_beats: int):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"WeightBuffer depth must be a positive integer, got {depth!r}")
        if not isinstance(max_beats, int) or max_beats < 1:
            raise ValueError(f"WeightBuffer max_beats must be a positive integer, "
                             f"got {max_beats!r}")
        self.shape, self.depth, self.max_beats = shape, depth, max_beats
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "start": In(1),
            "block_end": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        m.submodules.ram = ram = BankedMemory(self.shape, depth, bank_depth=512,
                                              registered_write=False, ram_width=36)
        m.submodules.ahead = ahead = ResetInserter(self.start)(
            RegisterFIFO(self.shape, self.AHEAD))

        replay = Signal()               # the recording is over
        length = Signal(range(self.max_beats + 1))     # beats per block (L)
        count = Signal.like(length)     # recorded beats; then the output's place r
        from_ram = Signal()             # the output's beat r is below depth
        read_at = Signal(range(depth))  # next RAM word to read ahead
        read_last = Signal.like(read_at)    # min(depth, L) - 1
        pending = Signal(range(self.AHEAD + 1))  # reads in flight + FIFO entries
        arriving = Signal(BankedMemory.READ_LATENCY)

        # Recording, or replay of the part above `depth`: the stream itself.
        passing = ~replay | ~from_ram
        m.d.comb += [
            self.o.valid.eq(Mux(passing, self.i.valid, ahead.o.valid)),
            self.o.payload.eq(Mux(passing, self.i.payload, ahead.o.payload)),
            self.i.ready.eq(passing & self.o.ready),
            ahead.o.ready.eq(~passing & self.o.ready),
        ]
        taken = self.o.valid & self.o.ready

        m.d.comb += [
            ram.write_en.eq(~replay & self.i.valid & self.i.ready & (count < depth)),
            ram.write_addr.eq(count[:len(ram.write_addr)]),
            ram.write_data.eq(self.i.payload),
            ram.read_addr.eq(read_at),
            ahead.i.valid.eq(arriving[-1]),
            ahead.i.payload.eq(ram.read_data),
        ]

        read = replay & (pending < self.AHEAD)
        m.d.sync += arriving.eq((arriving << 1) | read)
        popped = ahead.o.valid & ahead.o.ready
        m.d.sync += pending.eq(pending + read - popped)
        with m.If(read):
            m.d.sync += read_at.eq(Mux(read_at == read_last, 0, read_at + 1))

        with m.If(~replay):
            with m.If(taken):
                m.d.sync += count.eq(count + 1)
            with m.If(self.block_end):
                # The block's last tile is loaded and consumed: count = L.
                last = Signal.like(read_last)
                m.d.comb += last.eq(Mux(count < depth, count - 1, depth - 1))
                m.d.sync += [replay.eq(1), length.eq(count), count.eq(0),
                             from_ram.eq(1), read_last.eq(last), read_at.eq(0)]
        with m.Elif(taken):
            wrap = count == length - 1
            m.d.sync += [
                count.eq(Mux(wrap, 0, count + 1)),
                from_ram.eq(wrap | (from_ram & (count != depth - 1))),
            ]

        with m.If(self.start):
            m.d.sync += [replay.eq(0), count.eq(0), pending.eq(0), arriving.eq(0)]
        return m

