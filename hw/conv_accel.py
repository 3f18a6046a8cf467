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
weights; ``status.done`` (write 1 to clear) rises when the layer has
finished or failed; ``error.code`` says why it failed (bits below). A layer
register above the build's maximum (``build*`` registers) is refused at
``start`` with ``exceeds_max`` and nothing runs; so is a start after a
parameter write to a channel beyond the maximum (``params``).

Error code bits (``error.code``, cleared by ``start``):

====  =================  ==================================================
bit   name               meaning
====  =================  ==================================================
0     shape              zero sizes, or the kernel is larger than the padded input
1     short_frame        ``tlast`` came before the frame's last pixel beat
2     long_frame         no ``tlast`` on the last pixel beat (the rest up to ``tlast`` is dropped)
3     sizes              output positions, reduction or output channels out of range
4     pool               pooling window/stride invalid for the convolution's output
5     pool_frame         internal: the pooling unit saw a wrong frame length
6     params             a parameter write named a channel beyond the maximum (start refused)
7     exceeds_max        a layer register is above the build's maximum
8     groups             ``groups`` is 0 or does not divide both channel counts
====  =================  ==================================================
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi_lite import AXIL_PORTS, AxiLiteRegisterFile, field_port_name, set_port_name
from .config import AccelConfig
from .conv_core import ConvCore
from .helpers import above
from .register_map import Field, Register, RegisterMap

__all__ = ["ConvAccel", "conv_accel_register_map", "ERROR_BITS", "MAGIC", "VERSION"]

#: ``id.magic``: ASCII "CNVA".
MAGIC = 0x434E5641
#: ``version`` (major, minor) of the register map.
VERSION = (1, 1)
#: ``error.code`` bit names, bit 0 first.
ERROR_BITS = ("shape", "short_frame", "long_frame", "sizes", "pool", "pool_frame", "params",
              "exceeds_max", "groups")


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
        Register("control", 0x20, (
            Field("start", 0, 1, "pulse", doc="start the layer described by the registers"),
            Field("cancel", 1, 1, "pulse", doc="abort the running layer"))),
        Register("status", 0x24, (
            _ro("busy", 0, 1, doc="a layer is running"),
            Field("done", 1, 1, "w1c", doc="a layer finished or failed (write 1 to clear)"),
            _rw("irq_enable", 2, 1, doc="drive irq while done is set"))),
        Register("error", 0x28, (_ro("code", 0, len(ERROR_BITS), doc="error bits of the last layer, see "
                                                       "hw/conv_accel.py"),)),
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
        Register("busy_cycles", 0x80, (_ro("count", 0, 32),), "performance counters"),
        Register("active_cycles", 0x84, (_ro("count", 0, 32),)),
        Register("macs_lo", 0x88, (_ro("count", 0, 32),)),
        Register("macs_hi", 0x8C, (_ro("count", 0, 16),)),
        Register("input_stall", 0x90, (_ro("count", 0, 32),)),
        Register("output_stall", 0x94, (_ro("count", 0, 32),)),
        Register("weight_stall", 0x98, (_ro("count", 0, 32),)),
        Register("drain_stall", 0x9C, (_ro("count", 0, 32),)),
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
        cfg = self.config
        regs, core = self.registers, self.core
        m.submodules.registers = regs
        m.submodules.core = core

        def port(register, field):
            return getattr(regs, field_port_name(register, field))

        for name in AXIL_PORTS:
            inner, outer = getattr(regs, name), getattr(self, name)
            if regs.signature.members[name].flow == In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)

        # Build parameters and sizes read back through ro fields.
        for reg in self.regmap.registers:
            if reg.name in ("id", "version") or reg.name.startswith("build"):
                for field in reg.fields:
                    m.d.comb += port(reg.name, field.name).eq(field.reset)

        # ---- streams ----------------------------------------------------
        rows, cols = cfg.array_rows, cfg.array_cols
        pixel_bits, weight_bits = rows * cfg.act_width, cols * cfg.weight_width
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

        # ---- layer registers -> core, with range checks --------------------
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

        # ---- per-channel parameters ------------------------------------------
        channel = port("param_channel", "channel")
        bad_channel = above(channel, cfg.max_out_channels - 1)
        m.d.comb += [
            core.param_en.eq(port("param_write", "write") & ~bad_channel),
            core.param_addr.eq(channel),
            core.param_data.bias.eq(port("param_bias", "bias")),
            core.param_data.multiplier.eq(port("param_multiplier", "multiplier")),
            core.param_data.shift.eq(port("param_shift", "shift")),
        ]

        # ---- control, status, errors --------------------------------------
        start = port("control", "start")
        # A parameter write to a channel beyond the maximum since the last
        # start; like a register above its maximum, it makes start refuse.
        bad_param_write = Signal()
        refused = Signal()
        m.d.comb += [
            core.start.eq(start & ~exceeds & ~bad_param_write & ~core.busy),
            core.cancel.eq(port("control", "cancel")),
            refused.eq(start & (exceeds | bad_param_write) & ~core.busy),
        ]
        with m.If(port("param_write", "write") & bad_channel):
            m.d.sync += bad_param_write.eq(1)
        with m.Elif(start & ~core.busy):
            m.d.sync += bad_param_write.eq(0)
        exceeded = Signal()
        param_error = Signal()
        ran = Signal()   # the last start reached the core (its error bits count)
        with m.If(start & ~core.busy):
            m.d.sync += [exceeded.eq(exceeds), param_error.eq(bad_param_write),
                         ran.eq(~exceeds & ~bad_param_write)]
        error = core.error
        code = Signal(len(ERROR_BITS))
        m.d.comb += [
            code[0].eq(ran & error.window.config), code[1].eq(ran & error.window.short_frame),
            code[2].eq(ran & error.window.long_frame), code[3].eq(ran & error.engine),
            code[4].eq(ran & error.pool.config),
            code[5].eq(ran & (error.pool.short_frame | error.pool.long_frame)),
            code[6].eq((ran & error.requant) | param_error), code[7].eq(exceeded),
            code[8].eq(ran & error.groups),
            port("error", "code").eq(code),
        ]
        done_before = Signal()
        m.d.sync += done_before.eq(core.done)
        m.d.comb += [
            port("status", "busy").eq(core.busy),
            getattr(regs, set_port_name("status", "done")).eq(
                (core.done & ~done_before) | refused),
            self.irq.eq(port("status", "done") & port("status", "irq_enable")),
        ]

        # ---- read-back sizes and counters -------------------------------------
        counters = core.counters
        # A top-level name for the core's state, so shallow traces show it.
        core_state = Signal.like(core.state)
        m.d.comb += [
            core_state.eq(core.state),
            port("conv_size", "height").eq(core.conv_height),
            port("conv_size", "width").eq(core.conv_width),
            port("out_size", "height").eq(core.out_height),
            port("out_size", "width").eq(core.out_width),
            port("busy_cycles", "count").eq(counters.busy_cycles),
            port("active_cycles", "count").eq(counters.active_cycles),
            port("macs_lo", "count").eq(counters.useful_macs[:32]),
            port("macs_hi", "count").eq(counters.useful_macs[32:]),
            port("input_stall", "count").eq(counters.input_stall),
            port("output_stall", "count").eq(counters.output_stall),
            port("weight_stall", "count").eq(counters.weight_stall),
            port("drain_stall", "count").eq(counters.drain_stall),
        ]
        return m
