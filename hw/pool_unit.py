"""Streaming max / average pooling over requantized activations.

Per channel, window ``K x K`` and stride ``U`` (each 1..maximum, independent,
so 2x2/2 and AlexNet's overlapping 3x3/2 both work), no padding, floor rule
for the output size (``golden.pool2d`` is the reference)::

    max: out[c][p][q] = max_{r,s < K} in[c][U*p + r][U*q + s]
    avg: out[c][p][q] = floor((2 * sum + K*K) / (2 * K*K))      # round half up

Beats carry ``lanes = array_cols`` channels (one channel group of one pixel;
lanes beyond ``C`` read as 0). Input order, with a run-time ``in_block``::

    for y < H: for each block of in_block columns: for g < ceil(C/lanes): for x in block

``in_block = 1`` is plain raster order (y, x, g); ``in_block = array_block``
is the order in which the systolic engine produces an output row. Output
order is raster: for p < P: for q < Q: for g; ``last`` on the final beat.

Storage: a ring of ``K`` rows in a
:class:`~convaccel.hw.banked_memory.BankedMemory` (block RAM banks with
registered outputs, read latency 2), row
``y`` in slot ``y mod K``; physically ``Kmax * 2**ceil(log2 Wmax) *
2**ceil(log2 Gmax)`` words. The unit takes the ``K`` rows an output row needs
(dropping rows no window touches when ``U > K``), then emits the row: each
output beat reads its ``K*K`` taps, one per cycle, so an output beat costs
``K*K`` cycles and the input does not overlap with emission.

Pipeline: a tap's read address is formed from the emission counters, the
block RAM's output is registered before the fold (max or sum) into the
window's accumulators, and :class:`~convaccel.hw.pool_finish.PoolFinish`
turns the fold into the max or the rounded average (exact, one multiplier
shared by the lanes). Results go to an output FIFO; a window starts only
with a FIFO place reserved for it (a registered credit count), so no
combinational path runs from ``o.ready`` into the unit. Frame control and
errors as in :mod:`convaccel.hw.window_generator`.

Blocks: :class:`~convaccel.hw.pool_geometry.PoolGeometry` samples and checks
the shape and counts out the groups and the output size,
:class:`~convaccel.hw.pool_ring_writer.PoolRingWriter` writes the input beats
into the ring, :class:`~convaccel.hw.pool_walk.PoolWalk` walks the taps of one
output row, and :class:`~convaccel.hw.pool_output.PoolOutput` folds and
finishes the windows into the output FIFO. This unit's FSM runs them in turn
and keeps the output row ``p``, its top input row and that row's ring slot.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .banked_memory import BankedMemory
from .config import AccelConfig, checked_config
from .frame_control import FrameControl
from .helpers import counter
from .job_control import JobControl
from .pool_finish import average_divider
from .pool_geometry import PoolGeometry, PoolMode, pool_shape_layout
from .pool_output import PoolOutput, pool_beat_layout
from .pool_ring_writer import (PoolRingWriter, pool_line_address, pool_line_buffer_depth,
                               pool_row_shape)
from .pool_walk import PoolWalk
from .window_generator import window_error_layout

__all__ = ["PoolMode", "PoolUnit", "pool_shape_layout", "average_divider"]


class PoolUnit(wiring.Component):
    """Max / average pooling with its own ``K``-row line buffer.

    Parameters
    ----------
    config : AccelConfig
        ``pool_support`` must be true; ``array_cols`` gives the lanes,
        ``max_pool_kernel``/``max_pool_stride`` and the image maxima the sizes.

    Attributes
    ----------
    i, o : stream of StructLayout({"data": lanes x signed(act_width), "last": 1})
    shape : In(pool_shape_layout(config))
    job : In(JobControl(window_error_layout()))
        ``job.start`` samples ``shape`` (ignored while busy); ``job.cancel``
        returns to idle at once; ``job.done`` stays set until the next start.
    out_height, out_width : Out(unsigned)
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        if not config.pool_support:
            raise ValueError("PoolUnit needs AccelConfig.pool_support=True, got False")
        self.config = config
        self.lanes = config.array_cols
        #: Words of the line buffer memory.
        self.memory_depth = pool_line_buffer_depth(config)
        beat = pool_beat_layout(config)
        super().__init__({
            "i": In(stream.Signature(beat)),
            "o": Out(stream.Signature(beat)),
            "shape": In(pool_shape_layout(config)),
            "job": In(JobControl(window_error_layout())),
            "out_height": Out(range(config.max_height + 1)),
            "out_width": Out(range(config.max_width + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        job = self.job
        # Registered reads (the block RAMs' output registers on ECP5) and
        # writes: a row's taps are read at least two cycles after its last
        # write (input and emission do not overlap).
        m.submodules.line_buffer = line_buffer = BankedMemory(
            data.ArrayLayout(signed(cfg.act_width), self.lanes), self.memory_depth,
            bank_depth=512, ram_width=36)
        m.submodules.setup = setup = PoolGeometry(cfg)
        m.submodules.writer = writer = PoolRingWriter(cfg)
        m.submodules.walk = walk = PoolWalk(cfg)
        m.submodules.output = output = PoolOutput(cfg)
        shape, geo = setup.frame_shape, setup.geometry

        # Output side: output row p, its top input row and that row's ring slot.
        p = Signal.like(self.out_height)
        y0 = Signal(pool_row_shape(cfg))
        slot_y0 = counter(cfg.max_pool_kernel)
        advance_steps = Signal(range(cfg.max_pool_stride + 1))
        issue = Signal()                     # a tap's read goes out this cycle
        height_last = Signal.like(self.out_height)     # held from set-up on (see PoolWalk)
        m.d.sync += height_last.eq(geo.out_height - 1)

        m.d.comb += [
            setup.shape.eq(self.shape), setup.cancel.eq(job.cancel),
            self.out_height.eq(geo.out_height), self.out_width.eq(geo.out_width),
            writer.shape.eq(shape), writer.geometry.eq(geo), writer.row_top.eq(y0),
            writer.data.eq(self.i.payload.data),
            line_buffer.write_en.eq(writer.write_en),
            line_buffer.write_addr.eq(writer.write_addr),
            line_buffer.write_data.eq(writer.write_data),
            walk.shape.eq(shape), walk.geometry.eq(geo), walk.row_top_slot.eq(slot_y0),
            walk.step.eq(issue),
            line_buffer.read_addr.eq(pool_line_address(cfg, walk.tap.group, walk.tap.x,
                                                       walk.tap.slot)),
            output.issue.eq(issue), output.read_data.eq(line_buffer.read_data),
            output.tag.first.eq(walk.first), output.tag.end.eq(walk.window_end),
            output.tag.last.eq(walk.row_last & (p == height_last)),
            output.kernel.eq(shape.kernel), output.average.eq(shape.mode == PoolMode.AVG),
            output.clear.eq(job.cancel),
        ]
        wiring.connect(m, wiring.flipped(self.o), output.o)

        def step_input():
            m.d.comb += writer.accept.eq(1)

        frame = FrameControl(m, self, writer.frame_end)
        m.d.comb += job.busy.eq(1)
        with m.FSM(name="state"):
            with m.State("IDLE"):
                m.d.comb += [job.busy.eq(0), setup.start.eq(job.start)]
                with m.If(job.start):
                    m.d.sync += [job.done.eq(0), job.error.eq(0)]
                    with m.If(setup.invalid):
                        m.d.sync += [job.done.eq(1), job.error.config.eq(1)]
                    with m.Else():
                        m.next = "SETUP"

            with m.State("SETUP"):
                # The geometry unit counts out the frame's sizes (a few cycles).
                with m.If(setup.counted):
                    m.d.comb += writer.restart.eq(1)
                    m.d.sync += [p.eq(0), y0.eq(0), slot_y0.eq(0)]
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("FILL"):
                m.d.comb += [self.i.ready.eq(writer.needed), writer.fill.eq(1)]
                with m.If(self.i.valid & self.i.ready):
                    step_input()
                    frame.check_frame_end()
                with m.If(~writer.needed):
                    m.d.comb += walk.begin.eq(1)
                    m.next = "EMIT"
                frame.leave_on_cancel()

            with m.State("EMIT"):
                # A window's first tap waits for its place; the rest follow.
                m.d.comb += issue.eq(output.may_start | ~walk.first)
                with m.If(issue & walk.row_last):
                    m.d.sync += advance_steps.eq(shape.stride)
                    m.next = "ADVANCE"
                frame.leave_on_cancel()

            with m.State("ADVANCE"):
                with m.If(p == height_last):
                    m.next = "DRAIN"
                with m.Elif(advance_steps != 0):
                    m.d.comb += writer.extend.eq(1)
                    m.d.sync += [advance_steps.eq(advance_steps - 1), y0.eq(y0 + 1),
                                 slot_y0.eq(Mux(slot_y0 == shape.kernel - 1, 0, slot_y0 + 1))]
                with m.Else():
                    m.d.sync += p.eq(p + 1)
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("DRAIN"):
                # Rows below the last window are read and dropped (floor rule).
                frame.drain_state(writer.rows_left, step_input, output.empty)

            with m.State("DISCARD"):
                frame.discard_state()

        return m
