"""One quantized CNN layer: the streaming datapath of the conv engine.

::

    pixels --> WindowGenerator --> SystolicEngine --> RequantActivation --> PoolUnit --> out
                                        ^                (bias, M0, sh,        (max/avg, or
    weights ----------------------------+                 activation)          1x1 = reorder)

* ``pixels``: the input feature map, raster order, ``array_rows`` channels per
  beat (see :mod:`convaccel.hw.window_generator`), ``last`` on the final beat.
* ``weights``: the engine's weight stream for ``K = R * S * ceil(C/rows) * rows``
  reduction terms in the window generator's ``k`` order and ``M`` outputs,
  blocks cut at output-row ends (``convaccel.sim.conv_driver`` builds it).
* ``out``: the layer's output, raster order ``p, q, channel group``,
  ``array_cols`` channels per beat, ``last`` on the final beat. With pooling
  off the pooling unit runs as a 1x1/1 pass-through, which also turns the
  engine's block order into raster order.

Arithmetic: exactly ``golden.conv_layer``: conv -> + bias -> requantize ->
activation -> pool, with the layer's zero points (docs/arithmetic.md, "Zero
points"): padded taps read as ``input_zero_point`` (the window generator),
``output_zero_point`` is added before saturation and is where the
activations clamp (the requantization unit). The sum is ``x * w``; the host
folds ``-input_zero_point * sum(w)`` into the bias. Groups (including
depthwise): the weight matrix is block diagonal;
:class:`~convaccel.hw.group_tiles.GroupTileMap` works out which output tiles
each input chunk feeds and the engine skips the all-zero tiles (the weight
stream leaves them out, see ``convaccel.sim.conv_driver``). Within a visited
tile the weights between groups are zero.

Control, through the ``job`` port
(:class:`~convaccel.hw.job_control.JobControl`, as each unit's):
``job.start`` samples ``layer``; the window generator works out ``P, Q`` and
the group map its tile ranges first, then the engine and pooling unit are
started with the sizes that follow.

``job.done`` means the layer is over *and* the next start will be taken: it
rises only when the last output beat has been handed over and every unit is
idle, which includes the window generator having read the whole input frame
up to its ``last`` beat (input rows and columns below and right of the last
window are read and dropped). Any unit's error (bad shape, sizes above a
maximum, a convolution output larger than the build's ``max_height x
max_width``, short or long frame) cancels the others, sets ``job.done`` and
the matching ``job.error`` bits and leaves the core idle. ``job.cancel``
aborts a running layer and ends it like an error, with ``error.cancelled``;
it is ignored while the core is idle. After an error or a cancel, the unread
rest of the input streams stays where it is: the host discards it.

Counters: :class:`~convaccel.hw.layer_counters.LayerCounters` (cycles from
``start`` to the last output handshake, real multiply-accumulates) and the
engine's own issue and stall counters.
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .group_tiles import GroupTileMap
from .helpers import above
from .input_port_stage import InputPortStage
from .job_control import JobControl
from .layer_counters import LayerCounters, layer_counters_layout
from .layer_setup import LayerSetup
from .pool_unit import PoolMode, PoolUnit, pool_shape_layout
from .requant_activation import Activation, RequantActivation, channel_params_layout
from .register_fifo import RegisterFIFO
from .output_port_stage import OutputPortStage
from .skid_buffer import SkidBuffer
from .systolic_engine import SystolicEngine, engine_counters_layout
from .window_generator import WindowGenerator, layer_shape_layout, window_error_layout

__all__ = ["ConvCore", "CoreState", "conv_layer_layout", "core_counters_layout",
           "core_error_layout"]


class CoreState(enum.Enum, shape=3):
    """The core's control state (a debug output, shown in the demo's waveform view)."""

    IDLE = 0
    GEOMETRY = 1   # window generator works out P, Q; group map its tile ranges
    RUN = 2
    FAILED = 3     # an error: later units held in reset until the input is done
    CANCEL = 4
    LAUNCH = 5     # set-up done: the output size check is read, the units start
    FINISH = 6     # the layer ends: done and the input ports' closing are registered


def conv_layer_layout(config: AccelConfig) -> data.StructLayout:
    """Run-time description of one layer (sampled at ``start``)."""
    return data.StructLayout({
        "conv": layer_shape_layout(config),
        "out_channels": range(config.max_out_channels + 1),
        "groups": range(config.max_in_channels + 1),
        "activation": Activation,
        "clamp_high": signed(config.act_width),        # output zero point included
        "input_zero_point": signed(config.act_width),  # the value of padded taps
        "output_zero_point": signed(config.act_width),
        "pool_enable": 1,
        "pool_kernel": range(config.max_pool_kernel + 1),
        "pool_stride": range(config.max_pool_stride + 1),
        "pool_mode": PoolMode,
    })


def core_error_layout() -> data.StructLayout:
    """Error bits of one layer, cleared by ``start``."""
    return data.StructLayout({
        "window": window_error_layout(),   # bad conv shape, short/long input frame
        "engine": 1,                       # N, K or M zero or above a maximum
        "pool": window_error_layout(),     # bad pooling for the conv output size
        "requant": 1,                      # channel beyond max_out_channels
        "groups": 1,                       # groups zero or not dividing C and M
        "conv_size": 1,                    # P x Q larger than max_height x max_width
        "cancelled": 1,                    # ended by cancel
    })


def core_counters_layout() -> data.StructLayout:
    """Performance counters of the last layer (cleared by ``start``)."""
    return data.StructLayout({"layer": layer_counters_layout(),
                              "engine": engine_counters_layout()})


class ConvCore(wiring.Component):
    """Streaming datapath of one quantized convolution layer.

    Parameters
    ----------
    config : AccelConfig
        Must have ``pool_support`` (the pooling unit also reorders the output).

    Attributes
    ----------
    pixels, weights : In(stream)
    out : Out(stream)
    layer : In(conv_layer_layout(config))
    job : In(JobControl(core_error_layout()))
        ``job.start`` samples ``layer`` (ignored while busy); ``job.cancel``
        ends a running layer with ``error.cancelled``; ``job.busy`` is a
        register, so the input ports' ``ready`` is a flip-flop and one gate.
    param_en, param_addr, param_data : In
        Per-channel bias / multiplier / shift, see
        :class:`~convaccel.hw.requant_activation.RequantActivation`.
    counters : Out(core_counters_layout())
        The layer's cycle and real-MAC counters and the systolic engine's
        issue and stall counters, for the last layer.
    state : Out(CoreState)
        Control state, for waveforms and debugging.
    conv_height, conv_width, out_height, out_width : Out(unsigned)
        Convolution and final (pooled) output sizes of the current layer.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        if not config.pool_support:
            raise ValueError("ConvCore needs AccelConfig.pool_support=True, got False")
        self.config = config
        self.window = WindowGenerator(config)
        self.engine = SystolicEngine(config)
        self.requant = RequantActivation(config, lanes=config.array_cols)
        self.pool = PoolUnit(config)
        self.group_map = GroupTileMap(config)
        self.layer_counters = LayerCounters(config)
        self.setup = LayerSetup(config)
        super().__init__({
            "pixels": In(stream.Signature(self.window.i.payload.shape())),
            "weights": In(stream.Signature(self.engine.weights.payload.shape())),
            "out": Out(stream.Signature(self.pool.o.payload.shape())),
            "layer": In(conv_layer_layout(config)),
            "job": In(JobControl(core_error_layout())),
            "param_en": In(1),
            "param_addr": In(self.requant.param_addr.shape()),
            "param_data": In(channel_params_layout(config)),
            "counters": Out(core_counters_layout()),
            "state": Out(CoreState),
            "conv_height": Out(self.window.out_height.shape()),
            "conv_width": Out(self.window.out_width.shape()),
            "out_height": Out(self.pool.out_height.shape()),
            "out_width": Out(self.pool.out_width.shape()),
        })

    def _datapath(self, m, flush, stopping, busy_next):
        """The units' streams, with a registered stage wherever a ``ready`` is
        combinational (so no path crosses a unit boundary): two in front of
        the window generator and of the engine's weights (the core's inputs:
        a port stage whose ready is the port's tready, then a register FIFO),
        between the window generator and the engine, between the engine and
        the requantization (the engine's output FIFO spans the chip from the
        array to here; a registered ``ready`` keeps its level logic local),
        between the requantization and the pooling unit, and after the
        pooling unit (the core's output). The requantization's output leaves
        from a FIFO already. Returns the output stage."""
        window, engine, requant, pool = self.window, self.engine, self.requant, self.pool

        def stage(name, source, reset, kind=SkidBuffer):
            unit = ResetInserter(reset)(kind(source.payload.shape()))
            m.submodules[name] = unit
            wiring.connect(m, source, unit.i)
            return unit.o

        def input_stage(name, port, reset):
            # The core's inputs take beats only while a layer runs (busy), so
            # nothing of a finished or failed layer stays behind for the next
            # one; the port stage's ready is one flip-flop, the port's tready.
            # A register FIFO after it keeps the unit's combinational ready
            # (the window generator's state, the weight loader's decision)
            # away from the port stage, and from the payload's enables.
            unit = ResetInserter(reset)(InputPortStage(port.payload.shape()))
            m.submodules[f"{name}_port"] = unit
            m.d.comb += unit.open_next.eq(busy_next)
            wiring.connect(m, wiring.flipped(port), unit.i)
            return stage(f"{name}_stage", unit.o, reset, RegisterFIFO)

        # A cancelled frame leaves nothing behind in the input stages.
        pixels = input_stage("pixel", self.pixels, window.job.cancel)
        weights = input_stage("weight", self.weights, flush)
        # The engine's act.ready is the end of its issue decision: it moves
        # only the pointers of a register FIFO, not a skid buffer's payload.
        slices = stage("slice_stage", window.o, flush, RegisterFIFO)
        results = stage("result_stage", engine.result, flush)
        values = stage("value_stage", requant.o, flush, RegisterFIFO)   # pool ready: its state
        # Each stage's output and the next unit's input share a signature
        # (the payloads of convaccel.hw.stage_payloads).
        wiring.connect(m, pixels, window.i)
        wiring.connect(m, weights, engine.weights)
        wiring.connect(m, slices, engine.act)
        wiring.connect(m, results, requant.i)
        wiring.connect(m, values, pool.i)
        # The output port leaves from flip-flops; while the core ends a failed
        # or cancelled layer (`stopping`) it offers no new beat, so once none
        # is left waiting the flush withdraws nothing (see elaborate()).
        out_stage = ResetInserter(flush)(OutputPortStage(pool.o.payload.shape()))
        m.submodules.out_stage = out_stage
        m.d.comb += out_stage.hold.eq(stopping)
        wiring.connect(m, pool.o, out_stage.i)
        wiring.connect(m, out_stage.o, wiring.flipped(self.out))
        return out_stage

    def _configure_units(self, m):
        """The layer register (sampled at ``start``) and what each unit and the
        set-up arithmetic are told of it; returns the register."""
        cfg = self.config
        window, engine, requant, pool = self.window, self.engine, self.requant, self.pool
        group_map, setup = self.group_map, self.setup
        layer = Signal(conv_layer_layout(cfg))
        conv = layer.conv
        m.d.comb += [requant.activation.eq(layer.activation),
                     requant.clamp_high.eq(layer.clamp_high),
                     requant.zero_point.eq(layer.output_zero_point)]
        # A register: the pooling unit checks and counts out its shape at its
        # start, which comes after the window generator's sizes are final;
        # the selections here stay out of that arithmetic's cycle.
        pool_shape = Signal(pool_shape_layout(cfg))
        m.d.sync += [
            pool_shape.height.eq(window.out_height),
            pool_shape.width.eq(window.out_width),
            pool_shape.channels.eq(layer.out_channels),
            pool_shape.kernel.eq(Mux(layer.pool_enable, layer.pool_kernel, 1)),
            pool_shape.stride.eq(Mux(layer.pool_enable, layer.pool_stride, 1)),
            pool_shape.mode.eq(Mux(layer.pool_enable, layer.pool_mode, PoolMode.MAX)),
            pool_shape.in_block.eq(cfg.array_block),
        ]
        m.d.comb += [
            pool.shape.eq(pool_shape),
            window.shape.eq(self.layer.conv),
            window.zero_point.eq(self.layer.input_zero_point),   # sampled at its start
            engine.n_vectors.eq(setup.n_vectors),
            engine.row_length.eq(window.out_width),
            engine.k_terms.eq(setup.k_terms),
            engine.m_outputs.eq(layer.out_channels),
            engine.chunks.eq(group_map.chunks),
            engine.tile_map.eq(group_map.tiles),
            group_map.in_channels.eq(self.layer.conv.channels),
            group_map.out_channels.eq(self.layer.out_channels),
            group_map.groups.eq(self.layer.groups),
            setup.start.eq(self.job.start & ~self.job.busy),
            setup.kernel_h.eq(conv.kernel_h), setup.kernel_w.eq(conv.kernel_w),
            setup.geometry_valid.eq(window.geometry_valid),
            setup.out_height.eq(window.out_height), setup.out_width.eq(window.out_width),
            setup.channel_groups.eq(window.groups),
            setup.groups_valid.eq(group_map.ready),
            setup.in_per_group.eq(group_map.in_per_group),
        ]
        return layer

    def _control(self, m, layer, closing, finish, out_free, oversize, pool_start, stopping,
                 out_empty):
        """The core's FSM: starts the units in turn, stops them all on the first
        error or a cancel, and finishes when the next ``start`` will be taken."""
        window, engine, requant, pool = self.window, self.engine, self.requant, self.pool
        group_map, setup, counters, job = self.group_map, self.setup, self.layer_counters, self.job
        unit_failed = (window.job.error.as_value().any() | engine.job.error
                       | pool.job.error.as_value().any())
        # The window generator's cancel is a register: the core's state
        # decode does not run on into the generator's control. No state after
        # FAILED and CANCEL asks for it, so it is 0 from the cycle after
        # FINISH on, and a start taken next is never cancelled.
        cancel_window = Signal()
        m.d.sync += window.job.cancel.eq(cancel_window)

        def capture_errors():
            m.d.sync += [
                job.error.window.eq(window.job.error),
                job.error.engine.eq(engine.job.error),
                job.error.pool.eq(pool.job.error),
                job.error.requant.eq(requant.error),
                job.error.groups.eq(group_map.error),
            ]

        def leave_on_cancel():
            with m.If(job.cancel):
                m.next = "CANCEL"

        with m.FSM(name="state") as fsm:
            with m.State("IDLE"):
                m.d.comb += self.state.eq(CoreState.IDLE)
                with m.If(job.start):
                    m.d.sync += [layer.eq(self.layer), job.done.eq(0), job.error.eq(0)]
                    m.d.comb += [window.job.start.eq(1), group_map.start.eq(1),
                                 counters.start.eq(1), requant.clear_error.eq(1)]
                    m.next = "GEOMETRY"
            with m.State("GEOMETRY"):
                m.d.comb += self.state.eq(CoreState.GEOMETRY)
                # The window generator works out P and Q before it streams;
                # the group map its tile ranges, the counters (C/G)*R*S.
                with m.If(window.job.done & window.job.error.as_value().any()):
                    capture_errors()
                    m.next = "FINISH"
                with m.Elif(group_map.error):
                    capture_errors()
                    m.next = "FAILED"
                with m.Elif(window.geometry_valid & group_map.ready & setup.ready):
                    m.next = "LAUNCH"
                leave_on_cancel()
            with m.State("LAUNCH"):
                m.d.comb += self.state.eq(CoreState.LAUNCH)
                with m.If(oversize):
                    m.d.sync += job.error.conv_size.eq(1)
                    m.next = "FAILED"
                with m.Else():
                    m.d.comb += engine.job.start.eq(1)
                    m.d.sync += pool_start.eq(1)
                    m.next = "RUN"
                leave_on_cancel()
            with m.State("RUN"):
                m.d.comb += self.state.eq(CoreState.RUN)
                with m.If(unit_failed):
                    capture_errors()
                    m.next = "FAILED"
                with m.Elif(pool.job.done & ~pool.job.busy & ~engine.job.busy & ~window.job.busy
                            & out_empty):
                    # The window generator is idle only once it has read the
                    # whole input frame: the next start will be taken.
                    capture_errors()
                    m.next = "FINISH"
                leave_on_cancel()
            with m.State("FAILED"):
                m.d.comb += self.state.eq(CoreState.FAILED)
                # Hold the later units in reset until the window generator is
                # idle: it ends a bad input frame itself (a long frame is read
                # up to `last`); after an engine or pool error it is cancelled.
                # A beat already offered on `out` is never withdrawn: the
                # port closes (and the reset starts) after a cycle in which
                # none was left waiting.
                # A cancel here also stops a long frame's discarding.
                m.d.comb += cancel_window.eq(~job.error.window.as_value().any() | job.cancel)
                with m.If(job.cancel):
                    m.d.sync += job.error.cancelled.eq(1)
                with m.If(out_free):
                    m.d.sync += closing.eq(1)
                with m.If(~window.job.busy & closing):
                    m.d.sync += closing.eq(0)
                    m.next = "FINISH"
            with m.State("CANCEL"):
                m.d.comb += self.state.eq(CoreState.CANCEL)
                m.d.comb += cancel_window.eq(1)
                with m.If(out_free):
                    m.d.sync += closing.eq(1)
                with m.If(closing):
                    m.d.sync += [job.error.cancelled.eq(1), closing.eq(0)]
                    m.next = "FINISH"
            with m.State("FINISH"):
                # A state of its own, so `finish` (which closes the input
                # ports and sets done) is a register's decode, not the end of
                # every unit's busy and error logic.
                m.d.comb += [self.state.eq(CoreState.FINISH), finish.eq(1)]
                m.next = "IDLE"
        # The output stage holds from the cycle after the state turns to
        # FAILED or CANCEL: a beat it offers then is still taken first.
        m.d.sync += stopping.eq(fsm.ongoing("FAILED") | fsm.ongoing("CANCEL"))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        window, engine, requant, pool = self.window, self.engine, self.requant, self.pool
        group_map = self.group_map
        job = self.job
        # `flush` returns the units after the window generator to their reset
        # state (their memories keep their contents) after an error or cancel.
        # It is the register `closing`, set once no output beat is left
        # waiting at the port while the output stage holds: from then on the
        # port offers nothing, so the reset can withdraw nothing, and no port
        # signal drives the units' reset through logic.
        closing = Signal()
        flush = closing
        m.submodules.window = window
        m.submodules.engine = ResetInserter(flush)(engine)
        m.submodules.requant = ResetInserter(flush)(requant)
        m.submodules.pool = ResetInserter(flush)(pool)
        m.submodules.group_map = ResetInserter(flush)(group_map)
        m.submodules.layer_counters = counters = self.layer_counters
        m.submodules.setup = setup = self.setup
        # The units' job ports are assigned member by member, not joined with
        # wiring.connect: the FSM starts and cancels each unit in its own
        # states and combines their busy, done and error.

        busy_next = Signal()    # job.busy of the next cycle (the input ports open)
        stopping = Signal()     # ending a failed or cancelled layer (a cycle late)
        out_stage = self._datapath(m, flush, stopping, busy_next)
        m.d.comb += [
            requant.param_en.eq(self.param_en),
            requant.param_addr.eq(self.param_addr),
            requant.param_data.eq(self.param_data),
            self.counters.engine.eq(engine.counters),
            self.counters.layer.eq(counters.counters),
            self.conv_height.eq(window.out_height),
            self.conv_width.eq(window.out_width),
            self.out_height.eq(pool.out_height),
            self.out_width.eq(pool.out_width),
        ]

        layer = self._configure_units(m)
        out_free = ~self.out.valid | self.out.ready   # no output beat left waiting
        # The conv output must fit the pooling unit's and the engine's sizing.
        # Registered (from registers that hold still once the geometry is
        # valid), so the units' start comes from flip-flops and one gate.
        oversize = Signal()
        m.d.sync += oversize.eq(above(window.out_height, cfg.max_height)
                                | above(window.out_width, cfg.max_width))
        finish = Signal()   # done is set at the next edge
        # The pooling unit starts a cycle after the engine, which checks its
        # sizes a cycle after its start: both units' errors rise together.
        pool_start = Signal()
        m.d.sync += pool_start.eq(0)
        m.d.comb += pool.job.start.eq(pool_start)

        m.d.comb += [
            counters.out_channels.eq(self.layer.out_channels),
            counters.terms.eq(setup.terms),
            counters.result.eq(engine.result.valid & engine.result.ready),
            counters.result_tile.eq(engine.result.payload.group),
            counters.out_last.eq(self.out.valid & self.out.ready & self.out.payload.last),
            *[getattr(counters.streams, name).eq(Cat(port.valid, port.ready))
              for name, port in (("pixels", self.pixels), ("weights", self.weights),
                                 ("out", self.out))],
            counters.stop.eq(finish),
        ]
        # busy is a register (set by an idle start, cleared with `finish`:
        # exactly when the state leaves and re-enters IDLE); its next value
        # opens the input stages, whose ready is then a flip-flop of its own.
        m.d.comb += busy_next.eq(Mux(finish, 0, job.busy | job.start))
        m.d.sync += job.busy.eq(busy_next)
        with m.If(finish):
            m.d.sync += job.done.eq(1)

        self._control(m, layer, closing, finish, stopping & out_free, oversize, pool_start,
                      stopping, out_stage.empty)
        return m
