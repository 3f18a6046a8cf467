"""On-chip weight buffer: the weight stream crosses the bus once per layer.

The engine visits the same weight tiles in the same order for every block of
output positions (:mod:`convaccel.hw.systolic_engine`), so the ``L`` weight
beats of one block are the whole layer's weights. The buffer sits between the
weight stream and the engine's tile loader:

* **first block (record)**: beats come from the stream, and the first
  ``depth`` of them are also written to a block RAM;
* **later blocks (replay)**: beat ``r`` of the block (``0 <= r < L``) comes
  from the RAM when ``r < depth``, otherwise from the stream again.

So the host sends the block's ``L`` beats once and then, for each further
block, only beats ``depth ... L - 1`` (none when the layer's weights fit).
:func:`convaccel.host.streams.weight_lanes` builds that stream.

``L`` is learnt, not configured: ``block_end`` marks the cycle the last tile
of a block is consumed by the engine, and its first pulse of a problem ends
the recording.

Beats go through a small register FIFO in front of the loader. Stream
beats are fetched on the loader's demand, not on its ``ready``: each
``want_tile`` pulse (every consume that has a further tile; ``start``
stands for the problem's first tile) allows ``rows`` more beats, so the
stream is never read beyond
the tiles the engine will load (no beat of the next block or layer is taken
early). Replayed beats are read from the RAM whenever the FIFO has room,
ahead of the demand (a read too many is harmless: ``start`` empties the
FIFO), so the next tile waits in the FIFO while the current one runs. Every hand-off is a register: the stream's
``ready`` and the FIFO's ``valid`` are flip-flops or ANDs of flip-flops, the
RAM's write port is registered, and its read data is registered once more
after the bank multiplexer (so the replay's read latency is 3).
``want_tile`` and ``block_end`` come from the engine's issue decision, late
in the cycle: both are registered on entry, and act a cycle later together
(the recording ends before the stream may be read for the next block).
``start`` (the engine's problem start) empties the FIFO and returns to
recording.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .banked_memory import BankedMemory
from .helpers import up_down, up_down_test
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
    rows : int
        Beats per tile (``array_rows``): what one ``want_tile`` allows.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        The weight stream (``L`` beats, then ``L - depth`` per further block).
        ``i.ready`` is an AND of flip-flops.
    o : Out(stream.Signature(shape))
        Every block's ``L`` beats, to the tile loader (a register FIFO's output).
    start : In(1)
        A problem starts: empty the FIFO, record from the next beat on.
    want_tile : In(1)
        The loader will take ``rows`` more beats (a consume with a further
        tile; the first tile comes with ``start``).
    block_end : In(1)
        The last tile of a block is consumed (ends the recording).
    """

    #: The banked RAM's read latency, with its bank registers (its banks
    #: spread over the die).
    RAM_LATENCY = BankedMemory.READ_LATENCY + 1
    #: Cycles from a RAM read to its word entering the FIFO: the RAM's,
    #: and a register after the banks' OR.
    READ_LATENCY = RAM_LATENCY + 1

    def __init__(self, shape, depth: int, max_beats: int, rows: int):
        for name, value in (("depth", depth), ("max_beats", max_beats), ("rows", rows)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"WeightBuffer {name} must be a positive integer, "
                                 f"got {value!r}")
        self.shape, self.depth, self.max_beats, self.rows = shape, depth, max_beats, rows
        # Enough entries to take a whole tile while the loader waits after a
        # consume, and to hide the RAM's latency at one beat per cycle.
        self.ahead = max(rows, self.READ_LATENCY + 2)
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "start": In(1),
            "want_tile": In(1),
            "block_end": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth, ahead = self.depth, self.ahead
        m.submodules.ram = ram = BankedMemory(self.shape, depth, bank_depth=512, ram_width=36,
                                              read_latency=self.RAM_LATENCY)
        m.submodules.fifo = fifo = ResetInserter(self.start)(RegisterFIFO(self.shape, ahead))
        wiring.connect(m, fifo.o, wiring.flipped(self.o))

        replay = Signal()               # the recording is over
        length_last = Signal(range(-1, self.max_beats + 1))    # beats per block - 1 (L - 1)
        place = Signal(range(self.max_beats + 1))   # recorded beats; then the next fetch's r
        from_ram = Signal()             # (replay) beat `place` is below depth
        # Beats wanted minus beats fetched (negative once the RAM reads ahead).
        credit = Signal(range(-ahead, 2 * self.rows + 1))
        pending = Signal(range(ahead + 1))  # RAM reads in flight + FIFO entries
        arriving = Signal(self.READ_LATENCY)    # a RAM read is 1 .. READ_LATENCY cycles old
        read_data = Signal.like(ram.read_data, reset_less=True)  # the banks' OR, registered

        # The engine's late pulses, a cycle later (cleared by start).
        want = Signal()
        ended = Signal()
        m.d.sync += [want.eq(self.want_tile), ended.eq(self.block_end)]

        # pending < ahead, credit > 0 and arriving == 0, as registers beside
        # the counts, so the stream's ready is an AND of flip-flops.
        room = Signal(init=1)
        credit_left = Signal()
        quiet = Signal(init=1)
        read = replay & from_ram & room
        m.d.comb += self.i.ready.eq((~replay | ~from_ram) & room & credit_left & quiet)
        took = self.i.valid & self.i.ready
        fetched = read | took
        popped = fifo.o.valid & fifo.o.ready
        plus = Mux(want, self.rows, 0)
        m.d.comb += [
            fifo.i.valid.eq(arriving[-1] | took),
            fifo.i.payload.eq(Mux(arriving[-1], read_data, self.i.payload)),
            ram.write_en.eq(~replay & took & (place < depth)),
            ram.write_addr.eq(place[:len(ram.write_addr)]),
            ram.write_data.eq(self.i.payload),
            ram.read_addr.eq(place[:len(ram.read_addr)]),
        ]
        m.d.sync += [
            read_data.eq(ram.read_data),
            arriving.eq((arriving << 1) | read),
            quiet.eq(~read & (arriving[:-1] == 0)),
            pending.eq(up_down(pending, fetched, popped)),
            room.eq(up_down_test(pending, room, fetched, popped, lambda p: p < ahead)),
            # The fetch (late: the stream's valid) only picks between sums of
            # registers.
            credit.eq(Mux(fetched, credit + plus - 1, credit + plus)),
            credit_left.eq(Mux(fetched, Mux(want, credit > 1 - self.rows, credit > 1),
                               Mux(want, credit > -self.rows, credit > 0))),
        ]

        with m.If(~replay):
            with m.If(took):
                m.d.sync += place.eq(place + 1)
            with m.If(ended):
                # The block's last tile is loaded and consumed, its successor
                # not yet credited: place = L.
                m.d.sync += [replay.eq(1), length_last.eq(place - 1), place.eq(0),
                             from_ram.eq(1)]
        with m.Elif(fetched):
            wrap = place == length_last     # a register: no subtraction before it
            m.d.sync += [
                place.eq(Mux(wrap, 0, place + 1)),
                from_ram.eq(wrap | (from_ram & (place != depth - 1))),
            ]

        with m.If(self.start):
            m.d.sync += [replay.eq(0), place.eq(0), pending.eq(0), arriving.eq(0),
                         want.eq(0), ended.eq(0), credit.eq(self.rows),
                         room.eq(1), credit_left.eq(1), quiet.eq(1)]
        return m
