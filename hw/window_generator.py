"""Line buffer and sliding-window generator feeding the systolic engine.

Input: one feature map as a stream in raster order, one beat per pixel and
*channel group* - ``lanes = array_rows`` channels of one pixel (lanes beyond
``C`` in the last group are ignored and read as 0)::

    for y < H: for x < W: for g < ceil(C / lanes): beat = x[g*lanes : g*lanes+lanes, y, x]

``last`` marks the final beat of the frame.

Output: the convolution windows, as ``lanes``-wide slices in exactly the
order :class:`~convaccel.hw.systolic_engine.SystolicEngine` consumes
``act`` (``row_length = Q``, ``K = R * S * ceil(C/lanes) * lanes``)::

    for p < P:                                   # output rows
      for each block of up to array_block positions q of row p:
        for r < R: for s < S: for g < ceil(C / lanes):
          for q in block: beat = x[g*lanes : g*lanes+lanes, Uh*p + Dh*r - pt, Uw*q + Dw*s - pl]

with the input zero point ``zero_point`` wherever the tap falls in the
padding (generated, never stored; docs/arithmetic.md, "Zero points": padding
reads as ``zx``, 0 in the symmetric case). Lanes beyond ``C`` in the last
group are 0 in every slice, padded or not (their weights are 0).
Reduction index ``k = ((r * S + s) * ceil(C/lanes) + g) * lanes + lane``;
weights must be laid out the same way.

Storage: a ring of ``L = (R - 1) * Dh + 1`` input rows - exactly the rows
the taps of one output row span - in a
:class:`~convaccel.hw.banked_memory.BankedMemory` (block RAM banks whose
outputs are registered before the bank is chosen).
Row ``y`` lives in ring slot ``y mod L``. Physical size, for the generate-time
maxima: ``Lmax * 2**ceil(log2 Wmax) * 2**ceil(log2 ceil(Cmax/lanes))`` words of
``lanes * act_width`` bits; in use at run time: ``L * W * ceil(C/lanes)``.

Schedule: per output row, the generator first takes the input rows the row
needs that it does not hold yet (``Uh`` new rows in steady state, fewer near
the bottom padding; rows that no window touches are read and dropped), then
emits the row's slices, one per cycle. Input and output do not overlap: a
ring of ``L`` rows has no free slot while an output row is being emitted.
Slices are read by a free-running pipeline into an output FIFO; a slice is
issued only with a FIFO place reserved for it (a registered credit count).

Blocks: :class:`~convaccel.hw.window_geometry.WindowGeometry` samples and
checks the shape and does the set-up arithmetic,
:class:`~convaccel.hw.ring_writer.RingWriter` writes the input beats into the
ring, :class:`~convaccel.hw.window_walk.WindowWalk` walks the taps of one
output row, and :class:`~convaccel.hw.slice_output.SliceOutput` turns the
reads into the output stream. This unit's FSM runs them in turn and keeps the
output row ``p``, its top tap row and that row's ring slot.

Frame control, through the ``job`` port
(:class:`~convaccel.hw.job_control.JobControl`): ``job.start`` samples
``shape`` and ``zero_point``. A bad shape (a zero or a value above its
maximum, a kernel larger than the padded input) sets ``error.config``; a
``last`` before the frame's final beat sets ``error.short_frame``; a final
beat without ``last`` sets ``error.long_frame`` and the rest of the frame up
to ``last`` is read and dropped. In every case ``job.done`` is set and the unit returns to idle (an
erroneous frame's output is incomplete). ``job.cancel`` returns to idle at once.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .banked_memory import BankedMemory
from .config import AccelConfig, checked_config
from .frame_control import FrameControl
from .helpers import counter
from .job_control import JobControl
from .ring_writer import RingWriter, line_address, line_buffer_depth
from .slice_output import SliceOutput, slice_beat_layout
from .window_geometry import WindowGeometry, layer_shape_layout, tap_coordinate
from .window_walk import WindowWalk

__all__ = ["WindowGenerator", "layer_shape_layout", "window_error_layout"]


def window_error_layout() -> data.StructLayout:
    """Error bits, set at the end of a failed frame, cleared by ``start``."""
    return data.StructLayout({"config": 1, "short_frame": 1, "long_frame": 1})


class WindowGenerator(wiring.Component):
    """Streaming line buffer + window generator (see the module docstring).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows`` (lanes), ``array_block`` and the maxima.

    Attributes
    ----------
    i : In(stream.Signature(StructLayout({"data": lanes x act, "last": 1})))
        Input pixels, raster order.
    o : Out(stream.Signature(StructLayout({"data": lanes x act, "last": 1})))
        Window slices; ``last`` on the frame's final slice.
    shape : In(layer_shape_layout(config))
    zero_point : In(signed(act_width))
        Input zero point: the value of padded taps (sampled at ``start``).
    job : In(JobControl(window_error_layout()))
        ``job.start`` samples ``shape`` and ``zero_point`` (ignored while
        busy); ``job.cancel`` returns to idle at once; ``job.done`` stays
        set until the next start.
    out_height, out_width : Out(unsigned)
        ``P`` and ``Q`` of the current frame.
    groups : Out(unsigned)
        ``ceil(C / lanes)``, the channel groups per pixel.
    geometry_valid : Out(1)
        ``out_height``, ``out_width`` and ``groups`` are valid (from the end
        of set-up until the next ``start``).
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.lanes = config.array_rows
        self.group_max = -(-config.max_in_channels // self.lanes)
        self.ring_max = (config.max_kernel - 1) * config.max_dilation + 1
        #: Words of the line buffer memory (for the generate-time maxima).
        self.memory_depth = line_buffer_depth(config)
        beat = slice_beat_layout(config)
        span = max(config.max_height, config.max_width)
        super().__init__({
            "i": In(stream.Signature(beat)),
            "o": Out(stream.Signature(beat)),
            "shape": In(layer_shape_layout(config)),
            "zero_point": In(signed(config.act_width)),
            "job": In(JobControl(window_error_layout())),
            "out_height": Out(range(span + 2 * config.max_padding + 1)),
            "out_width": Out(range(span + 2 * config.max_padding + 1)),
            "groups": Out(range(self.group_max + 1)),
            "geometry_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        job = self.job
        # Banks of 512 words (one 512 x 36 block RAM per 36 bits of width):
        # each bank's output is registered twice before the bank is chosen
        # (the placer spreads the many RAMs far from the walk).
        m.submodules.line_buffer = line_buffer = BankedMemory(
            data.ArrayLayout(signed(cfg.act_width), self.lanes), self.memory_depth,
            bank_depth=512, read_latency=3)
        m.submodules.setup = setup = WindowGeometry(cfg)
        m.submodules.writer = writer = RingWriter(cfg)
        m.submodules.walk = walk = WindowWalk(cfg)
        m.submodules.output = output = SliceOutput(cfg, line_buffer.read_latency)
        shape, geo = setup.frame_shape, setup.geometry
        zero_point = Signal.like(self.zero_point)        # padded taps read as this

        # Output side: output row p and the input rows its taps span.
        p = Signal.like(self.out_height)
        y0 = Signal(tap_coordinate(cfg))   # top tap row of output row p
        slot_y0 = counter(self.ring_max)
        advance_steps = Signal(range(cfg.max_stride + 1))

        m.d.comb += [
            setup.shape.eq(self.shape), setup.cancel.eq(job.cancel),
            self.out_height.eq(geo.out_height), self.out_width.eq(geo.out_width),
            self.groups.eq(geo.groups), self.geometry_valid.eq(setup.valid),
            writer.shape.eq(shape), writer.geometry.eq(geo), writer.row_top.eq(y0),
            writer.data.eq(self.i.payload.data),
            line_buffer.write_en.eq(writer.write_en), line_buffer.write_addr.eq(writer.write_addr),
            line_buffer.write_data.eq(writer.write_data),
            walk.shape.eq(shape), walk.geometry.eq(geo),
            walk.row_top.eq(y0), walk.row_top_slot.eq(slot_y0), walk.step.eq(output.issue),
            line_buffer.read_addr.eq(line_address(cfg, walk.tap.group, walk.tap.x, walk.tap.slot)),
            output.read_data.eq(line_buffer.read_data),
            output.tag.pad.eq(walk.pad), output.tag.last_group.eq(walk.last_group),
            output.tag.last.eq(walk.row_last & (p == geo.out_height_last)),
            output.zero_point.eq(zero_point), output.unused_lanes.eq(geo.unused_lanes),
            # Emptied on cancel and held empty while idle: a frame that ended
            # in an error may leave slices nobody will take (a normal frame is
            # idle only once every slice has been taken).
            output.clear.eq(job.cancel | ~job.busy),
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
                    m.d.sync += [zero_point.eq(self.zero_point),
                                 job.done.eq(0), job.error.eq(0)]
                    m.next = "SETUP"

            with m.State("SETUP"):
                # The geometry unit checks the sampled shape, then works out
                # the frame's sizes (a few cycles).
                with m.If(setup.out_of_range | setup.too_large):
                    # A field 0 or above its maximum, or a kernel larger than
                    # the padded input.
                    frame.finish(job.error.config)
                    m.next = "IDLE"
                with m.If(setup.counted):
                    m.d.comb += writer.restart.eq(1)
                    m.d.sync += [p.eq(0), y0.eq(0 - shape.pad_top), slot_y0.eq(geo.top_slot)]
                    m.next = "FILL"
                frame.leave_on_cancel()

            with m.State("FILL"):
                m.d.comb += [self.i.ready.eq(writer.needed), writer.fill.eq(1)]
                with m.If(self.i.valid & self.i.ready):
                    step_input()
                    frame.check_frame_end()
                with m.If(~writer.needed):
                    # The row's first read comes at least 2 cycles after its
                    # last write (BankedMemory's write-to-read distance).
                    m.d.comb += walk.begin.eq(1)
                    m.next = "EMIT"
                frame.leave_on_cancel()

            with m.State("EMIT"):
                m.d.comb += output.issue.eq(output.space)
                with m.If(output.issue & walk.row_last):
                    m.d.sync += advance_steps.eq(shape.stride_h)
                    m.next = "ADVANCE"
                frame.leave_on_cancel()

            with m.State("ADVANCE"):
                with m.If(p == geo.out_height_last):
                    m.next = "DRAIN"
                with m.Elif(advance_steps != 0):
                    m.d.comb += writer.extend.eq(1)
                    m.d.sync += [advance_steps.eq(advance_steps - 1), y0.eq(y0 + 1),
                                 slot_y0.eq(Mux(slot_y0 == geo.ring_last, 0, slot_y0 + 1))]
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
