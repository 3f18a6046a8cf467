"""convaccel top level: the conv core behind AXI4-Lite registers and AXI4-Stream ports.

Ports (one clock ``clk``, one synchronous active-high reset ``rst``):

* ``s_axil_*``: AXI4-Lite slave, the register map of
  :func:`conv_accel_register_map` (also exported as Markdown, JSON and a C
  header by ``convaccel generate``);
* ``s_axis_pixels_*``: input feature map, ``tdata`` = ``array_rows``
  activations of one pixel (lane 0 in the low bits), raster order
  ``y, x, channel group``, ``tlast`` on the final beat;
* ``s_axis_weights_*``: weight stream in the systolic engine's order
  (``tdata`` = ``array_cols`` weights; ``tlast`` ignored);
* ``m_axis_out_*``: output feature map, ``array_cols`` activations per beat,
  raster order ``p, q, channel group``, ``tlast`` on the final beat;
* ``irq``: ``status.done & status.irq_enable``.

``tdata`` widths are rounded up to whole bytes; the extra bits are ignored
(inputs) or 0 (outputs).

Programming model: write the layer registers (``shape``, ``channels``,
``kernel``, ``padding``, ``mode``, ``groups``), the per-channel parameters
(``param_channel``, ``param_bias``, ``param_multiplier``, ``param_shift``,
then ``param_write.write``), then ``control.start``; stream the pixels and
weights; ``status.done`` (write 1 to clear; ``irq`` while ``irq_enable``)
rises when the layer has finished, failed or been cancelled, and ``error``
says why it failed (one bit per cause, :data:`ERROR_BITS`).

* ``done`` means the next ``start`` will be taken: it rises only after the
  last output beat has been handed over *and* the whole pixel frame has been
  read up to its ``tlast`` (rows and columns no window touches are read and
  dropped), so a host may start the next layer on the interrupt. ``start``
  clears ``done`` (and ``irq``); so does writing 1 to it.
* ``error`` and the counters hold the last layer that *ended*: they are
  captured with ``done`` and stay until the next layer ends, so they can be
  read after the next layer has been started.
* The layer registers are sampled at ``start``: the next layer's may be
  written while one runs. The per-channel parameters are not: a
  ``param_write`` while ``status.busy`` is ignored and sets ``param_busy``
  (the running layer keeps its parameters).
* A layer register above the build's maximum (``build*`` registers) is
  refused at ``start`` with ``exceeds_max`` and nothing runs; so is a start
  after a parameter write to a channel beyond the maximum (``params``). A
  ``start`` while busy is ignored.
* ``control.cancel`` ends a running layer with ``done`` and ``cancelled``;
  while idle it does nothing. After an error or a cancel the unread rest of
  the pixel and weight streams is not consumed: the host drops it.
* Output lanes of channels ``>= out_channels`` (the last channel group's
  unused lanes) are 0.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi_lite import (AXIL_PORTS, AxiLiteRegisterFile, clear_port_name, field_port_name,
                       set_port_name)
from .config import AccelConfig
from .conv_core import ConvCore
from .helpers import above
from .register_map import Field, Register, RegisterMap

__all__ = ["ConvAccel", "conv_accel_register_map", "COUNTERS", "ERROR_BITS", "MAGIC", "VERSION"]

#: ``id.magic``: ASCII "CNVA".
MAGIC = 0x434E5641
#: ``version`` (major, minor) of the register map.
VERSION = (2, 0)
#: ``error`` register bits, bit 0 first: name -> meaning (of the last layer that ended).
ERROR_BITS = {
    "shape": "a zero size, or the kernel is larger than the padded input",
    "short_frame": "pixel tlast came before the frame's last beat",
    "long_frame": "no pixel tlast on the frame's last beat (the rest up to tlast is "
                  "read and dropped)",
    "sizes": "output positions, reduction length or output channels out of the engine's range",
    "pool": "pooling kernel or stride zero, or the window larger than the convolution output",
    "pool_frame": "internal: the pooling unit saw a wrong frame length (never expected)",
    "params": "a param_write named a channel >= max_out_channels; start refused",
    "exceeds_max": "a layer register is above the build's maximum (build registers); "
                   "start refused, nothing runs",
    "groups": "groups is 0 or does not divide both in_channels and out_channels",
    "conv_size": "the convolution output (P x Q) is larger than max_height x max_width",
    "cancelled": "the layer was ended by control.cancel",
    "param_busy": "a param_write while busy was ignored (the running layer keeps its "
                  "parameters)",
}

#: Performance counters: register -> (width, meaning), of the last layer that ended.
COUNTERS = {
    "busy_cycles": (32, "clock edges from the AXI4-Lite handshake of the control.start "
                        "write to the output handshake with tlast (to done for a failed "
                        "or cancelled layer)"),
    "active_cycles": (32, "cycles the systolic array took in a vector"),
    "macs_lo": (32, "real multiply-accumulates P*Q*M*(C/groups)*R*S, bits 31..0 (no padded "
                    "channel lanes, no zeros between groups)"),
    "macs_hi": (16, "real multiply-accumulates, bits 47..32"),
    "input_stall": (32, "engine cycles waiting for window slices"),
    "output_stall": (32, "engine cycles waiting for room for results"),
    "weight_stall": (32, "engine cycles waiting for the next weight tile"),
    "drain_stall": (32, "engine cycles waiting for partial sums to be written back"),
}


def _ro(name, lsb, width, reset=0, doc=""):
    return Field(name, lsb, width, "ro", reset, doc)


def _rw(name, lsb, width, reset=0, doc=""):
    return Field(name, lsb, width, "rw", reset, doc)


def conv_accel_register_map(config: AccelConfig) -> RegisterMap:
    """The register map of a build (``build*`` registers read back its parameters)."""
    c = config
    if c.bias_width > 32:
        raise ValueError(f"ConvAccel needs bias_width <= 32 for its 32-bit registers, "
                         f"got {c.bias_width}")
    registers = [
        Register("id", 0x00, (_ro("magic", 0, 32, MAGIC, 'ASCII "CNVA"'),), "identification"),
        Register("version", 0x04, (_ro("minor", 0, 16, VERSION[1]),
                                   _ro("major", 16, 16, VERSION[0])), "register map version"),
        Register("build0", 0x08, (
            _ro("act_width", 0, 8, c.act_width), _ro("weight_width", 8, 8, c.weight_width),
            _ro("array_rows", 16, 8, c.array_rows), _ro("array_cols", 24, 8, c.array_cols)),
            "generate-time parameters"),
        Register("build1", 0x0C, (_ro("max_in_channels", 0, 16, c.max_in_channels),
                                  _ro("max_out_channels", 16, 16, c.max_out_channels))),
        Register("build2", 0x10, (_ro("max_height", 0, 16, c.max_height),
                                  _ro("max_width", 16, 16, c.max_width))),
        Register("build3", 0x14, (
            _ro("max_kernel", 0, 8, c.max_kernel), _ro("max_stride", 8, 4, c.max_stride),
            _ro("max_dilation", 12, 4, c.max_dilation), _ro("max_padding", 16, 8, c.max_padding),
            _ro("max_pool_kernel", 24, 4, c.max_pool_kernel),
            _ro("max_pool_stride", 28, 4, c.max_pool_stride))),
        Register("build4", 0x18, (
            _ro("bias_width", 0, 8, c.bias_width), _ro("mult_width", 8, 8, c.mult_width),
            _ro("shift_width", 16, 8, c.shift_width), _ro("acc_width", 24, 8, c.acc_width))),
        Register("build5", 0x1C, (
            _ro("array_block", 0, 16, c.array_block,
                "output positions per block: the weight stream repeats per block"),),
            "generate-time parameters that shape the streams"),
        Register("control", 0x20, (
            Field("start", 0, 1, "pulse", doc="start the layer described by the registers"),
            Field("cancel", 1, 1, "pulse", doc="end the running layer (done + cancelled); "
                                               "ignored while idle"))),
        Register("status", 0x24, (
            _ro("busy", 0, 1, doc="a layer is running (start is ignored)"),
            Field("done", 1, 1, "w1c", doc="a layer finished, failed or was cancelled and the "
                                           "next start will be taken (write 1 or start to "
                                           "clear)"),
            _rw("irq_enable", 2, 1, doc="drive irq while done is set"))),
        Register("error", 0x28, tuple(_ro(name, bit, 1, doc=meaning) for bit, (name, meaning)
                                      in enumerate(ERROR_BITS.items())),
                 "why the last layer that ended failed, one bit per cause (updated with "
                 "status.done)"),
        Register("shape", 0x30, (_rw("height", 0, 16, 1), _rw("width", 16, 16, 1)),
                 "input feature map size"),
        Register("channels", 0x34, (_rw("in_channels", 0, 16, 1), _rw("out_channels", 16, 16, 1))),
        Register("kernel", 0x38, (
            _rw("kernel_h", 0, 8, 1), _rw("kernel_w", 8, 8, 1), _rw("stride_h", 16, 4, 1),
            _rw("stride_w", 20, 4, 1), _rw("dilation_h", 24, 4, 1),
            _rw("dilation_w", 28, 4, 1))),
        Register("padding", 0x3C, (_rw("top", 0, 8), _rw("bottom", 8, 8), _rw("left", 16, 8),
                                   _rw("right", 24, 8))),
        Register("mode", 0x40, (
            _rw("activation", 0, 2, doc="0 none, 1 ReLU, 2 clamp to [0, clamp_high] (ReLU6)"),
            _rw("pool_enable", 2, 1),
            _rw("pool_mode", 3, 1, doc="0 max, 1 average"), _rw("pool_kernel", 8, 4, 1),
            _rw("pool_stride", 12, 4, 1),
            _rw("clamp_high", 16, c.act_width - 1, doc="upper bound of activation 2"))),
        Register("groups", 0x44, (_rw("groups", 0, 16, 1, doc="channel groups; in_channels "
                                                              "for depthwise"),)),
        Register("param_channel", 0x50, (_rw("channel", 0, 16),), "output channel to write"),
        Register("param_bias", 0x54, (_rw("bias", 0, 32, doc="two's complement"),)),
        Register("param_multiplier", 0x58, (_rw("multiplier", 0, c.mult_width),)),
        Register("param_shift", 0x5C, (_rw("shift", 0, c.shift_width),)),
        Register("param_write", 0x60, (Field("write", 0, 1, "pulse",
                                             doc="store bias/multiplier/shift for the channel"),)),
        Register("conv_size", 0x70, (_ro("height", 0, 16), _ro("width", 16, 16)),
                 "convolution output size of the current layer"),
        Register("out_size", 0x74, (_ro("height", 0, 16), _ro("width", 16, 16)),
                 "final (pooled) output size"),
        *(Register(name, 0x80 + 4 * index, (_ro("count", 0, width, doc=meaning),),
                   "performance counters of the last layer that ended (updated with "
                   "status.done)" if index == 0 else "")
          for index, (name, (width, meaning)) in enumerate(COUNTERS.items())),
    ]
    return RegisterMap("convaccel", tuple(registers), "convaccel conv engine")


def _bytes(bits: int) -> int:
    return -(-bits // 8) * 8


class ConvAccel(wiring.Component):
    """The conv engine with AXI4-Lite registers and AXI4-Stream data ports.

    Parameters
    ----------
    config : AccelConfig
        Needs ``pool_support`` and ``bias_width <= 32``.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, got {config!r}")
        self.config = config
        self.regmap = conv_accel_register_map(config)
        self.registers = AxiLiteRegisterFile(self.regmap)
        self.core = ConvCore(config)
        rows, cols = config.array_rows, config.array_cols
        members = {name: (In if self.registers.signature.members[name].flow == In else Out)(
            self.registers.signature.members[name].shape) for name in AXIL_PORTS}
        members.update({
            "s_axis_pixels_tdata": In(_bytes(rows * config.act_width)),
            "s_axis_pixels_tvalid": In(1), "s_axis_pixels_tready": Out(1),
            "s_axis_pixels_tlast": In(1),
            "s_axis_weights_tdata": In(_bytes(cols * config.weight_width)),
            "s_axis_weights_tvalid": In(1), "s_axis_weights_tready": Out(1),
            "s_axis_weights_tlast": In(1),
            "m_axis_out_tdata": Out(_bytes(cols * config.act_width)),
            "m_axis_out_tvalid": Out(1), "m_axis_out_tready": In(1),
            "m_axis_out_tlast": Out(1),
            "irq": Out(1),
        })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        regs, core = self.registers, self.core
        m.submodules.registers = regs
        m.submodules.core = core
        for name in AXIL_PORTS:
            inner, outer = getattr(regs, name), getattr(self, name)
            if regs.signature.members[name].flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        # Build parameters read back through ro fields.
        for reg in self.regmap.registers:
            if reg.name in ("id", "version") or reg.name.startswith("build"):
                for field in reg.fields:
                    m.d.comb += self._port(reg.name, field.name).eq(field.reset)
        self._connect_streams(m)
        exceeds = self._connect_layer_registers(m)
        self._control(m, exceeds)
        return m

    def _port(self, register, field):
        return getattr(self.registers, field_port_name(register, field))

    def _connect_streams(self, m):
        cfg, core = self.config, self.core
        pixel_bits = cfg.array_rows * cfg.act_width
        weight_bits = cfg.array_cols * cfg.weight_width
        m.d.comb += [
            core.pixels.valid.eq(self.s_axis_pixels_tvalid),
            core.pixels.payload.data.eq(self.s_axis_pixels_tdata[:pixel_bits]),
            core.pixels.payload.last.eq(self.s_axis_pixels_tlast),
            self.s_axis_pixels_tready.eq(core.pixels.ready),
            core.weights.valid.eq(self.s_axis_weights_tvalid),
            core.weights.payload.eq(self.s_axis_weights_tdata[:weight_bits]),
            self.s_axis_weights_tready.eq(core.weights.ready),
            self.m_axis_out_tvalid.eq(core.out.valid),
            self.m_axis_out_tdata.eq(core.out.payload.data),
            self.m_axis_out_tlast.eq(core.out.payload.last),
            core.out.ready.eq(self.m_axis_out_tready),
        ]

    def _connect_layer_registers(self, m):
        """Layer registers -> core; returns 'some register is above its maximum'."""
        cfg, core, port = self.config, self.core, self._port
        checks = [
            ("shape", "height", cfg.max_height), ("shape", "width", cfg.max_width),
            ("channels", "in_channels", cfg.max_in_channels),
            ("channels", "out_channels", cfg.max_out_channels),
            ("kernel", "kernel_h", cfg.max_kernel), ("kernel", "kernel_w", cfg.max_kernel),
            ("kernel", "stride_h", cfg.max_stride), ("kernel", "stride_w", cfg.max_stride),
            ("kernel", "dilation_h", cfg.max_dilation), ("kernel", "dilation_w", cfg.max_dilation),
            ("padding", "top", cfg.max_padding), ("padding", "bottom", cfg.max_padding),
            ("padding", "left", cfg.max_padding), ("padding", "right", cfg.max_padding),
            ("mode", "activation", 2), ("groups", "groups", cfg.max_in_channels),
            ("mode", "pool_kernel", cfg.max_pool_kernel),
            ("mode", "pool_stride", cfg.max_pool_stride),
        ]
        exceeds = 0
        for register, field, limit in checks:
            exceeds = exceeds | above(port(register, field), limit)
        conv = core.layer.conv
        m.d.comb += [
            conv.height.eq(port("shape", "height")), conv.width.eq(port("shape", "width")),
            conv.channels.eq(port("channels", "in_channels")),
            conv.kernel_h.eq(port("kernel", "kernel_h")),
            conv.kernel_w.eq(port("kernel", "kernel_w")),
            conv.stride_h.eq(port("kernel", "stride_h")),
            conv.stride_w.eq(port("kernel", "stride_w")),
            conv.dilation_h.eq(port("kernel", "dilation_h")),
            conv.dilation_w.eq(port("kernel", "dilation_w")),
            conv.pad_top.eq(port("padding", "top")), conv.pad_bottom.eq(port("padding", "bottom")),
            conv.pad_left.eq(port("padding", "left")), conv.pad_right.eq(port("padding", "right")),
            core.layer.out_channels.eq(port("channels", "out_channels")),
            core.layer.groups.eq(port("groups", "groups")),
            core.layer.activation.eq(port("mode", "activation")),
            core.layer.clamp_high.eq(port("mode", "clamp_high")),
            core.layer.pool_enable.eq(port("mode", "pool_enable")),
            core.layer.pool_mode.eq(port("mode", "pool_mode")),
            core.layer.pool_kernel.eq(port("mode", "pool_kernel")),
            core.layer.pool_stride.eq(port("mode", "pool_stride")),
        ]

        return exceeds

    def _control(self, m, exceeds):
        """Parameters, start/cancel and status; the last layer's error bits and counters."""
        cfg, core, port = self.config, self.core, self._port
        channel = port("param_channel", "channel")
        bad_channel = above(channel, cfg.max_out_channels - 1)
        param_write = port("param_write", "write")
        m.d.comb += [
            core.param_en.eq(param_write & ~bad_channel & ~core.busy),
            core.param_addr.eq(channel),
            core.param_data.bias.eq(port("param_bias", "bias")),
            core.param_data.multiplier.eq(port("param_multiplier", "multiplier")),
            core.param_data.shift.eq(port("param_shift", "shift")),
        ]
        idle_start = port("control", "start") & ~core.busy
        # A parameter write to a channel beyond the maximum since the last
        # start; like a register above its maximum, it makes start refuse.
        bad_param_write = Signal()
        refused = Signal()
        m.d.comb += [
            core.start.eq(idle_start & ~exceeds & ~bad_param_write),
            core.cancel.eq(port("control", "cancel")),
        ]
        m.d.sync += refused.eq(idle_start & (exceeds | bad_param_write))
        with m.If(param_write & bad_channel & ~core.busy):
            m.d.sync += bad_param_write.eq(1)
        with m.Elif(idle_start):
            m.d.sync += bad_param_write.eq(0)
        # Parameters are not double-buffered: a write while busy would change
        # the running layer's remaining outputs, so it is dropped and flagged.
        param_busy = Signal()
        with m.If(param_write & core.busy):
            m.d.sync += param_busy.eq(1)
        with m.Elif(idle_start):
            m.d.sync += param_busy.eq(0)
        exceeded = Signal()
        param_error = Signal()
        ran = Signal()   # the last start reached the core (its error bits count)
        with m.If(idle_start):
            m.d.sync += [exceeded.eq(exceeds), param_error.eq(bad_param_write),
                         ran.eq(~exceeds & ~bad_param_write)]
        error = core.error
        causes = {
            "shape": ran & error.window.config, "short_frame": ran & error.window.short_frame,
            "long_frame": ran & error.window.long_frame, "sizes": ran & error.engine,
            # out_channels = 0 is `sizes`; the pooling unit then also objects.
            "pool": ran & error.pool.config & ~error.engine,
            "pool_frame": ran & (error.pool.short_frame | error.pool.long_frame),
            "params": (ran & error.requant) | param_error, "exceeds_max": exceeded,
            "groups": ran & error.groups, "conv_size": ran & error.conv_size,
            "cancelled": ran & error.cancelled, "param_busy": param_busy,
        }
        assert list(causes) == list(ERROR_BITS)
        # A layer ends when the core raises done, or one cycle after a refused
        # start (once `exceeded` and `param_error` hold its causes).
        done_before = Signal()
        ended = Signal()
        m.d.sync += done_before.eq(core.done)
        m.d.comb += [
            ended.eq((core.done & ~done_before) | refused),
            port("status", "busy").eq(core.busy),
            getattr(self.registers, set_port_name("status", "done")).eq(ended),
            # A start clears done (and so irq): a host may start on the interrupt.
            getattr(self.registers, clear_port_name("status", "done")).eq(idle_start),
            self.irq.eq(port("status", "done") & port("status", "irq_enable")),
        ]
        self._last_layer_readback(m, ended, causes)

    def _last_layer_readback(self, m, ended, causes):
        """Error bits and counters of the last layer that ended, held until the next ends.

        They are captured with ``done``, so a host that starts the next layer
        on the interrupt can still read them until that layer ends.
        """
        core, port = self.core, self._port
        counters = core.counters
        live = {
            "busy_cycles": counters.layer.busy_cycles,
            "active_cycles": counters.engine.active_cycles,
            "macs_lo": counters.layer.macs[:32], "macs_hi": counters.layer.macs[32:],
            "input_stall": counters.engine.input_stall,
            "output_stall": counters.engine.output_stall,
            "weight_stall": counters.engine.weight_stall,
            "drain_stall": counters.engine.drain_stall,
        }
        assert list(live) == list(COUNTERS)
        for name, value in live.items():
            held = Signal(COUNTERS[name][0], name=f"last_{name}")
            with m.If(ended):
                m.d.sync += held.eq(value)
            m.d.comb += port(name, "count").eq(held)
        for name, cause in causes.items():
            held = Signal(name=f"last_error_{name}")
            with m.If(ended):
                m.d.sync += held.eq(cause)
            m.d.comb += port("error", name).eq(held)
        # A top-level name for the core's state, so shallow traces show it.
        core_state = Signal.like(core.state)
        m.d.comb += [
            core_state.eq(core.state),
            port("conv_size", "height").eq(core.conv_height),
            port("conv_size", "width").eq(core.conv_width),
            port("out_size", "height").eq(core.out_height),
            port("out_size", "width").eq(core.out_width),
        ]
