"""Layer-level performance counters: cycles and real multiply-accumulates.

``busy_cycles`` counts the clock edges from the one that takes ``start`` to
the one of the output handshake with ``last``, both included (or to the end
of a failed or cancelled layer). At the ``conv_accel`` top, where ``start``
is taken one edge after the AXI4-Lite write of ``control.start``, that is
exactly the number of edges from the write's handshake to the last output
handshake.

``macs`` counts the products a layer really needs, ``P*Q*M*(C/G)*R*S``: each
result beat of output tile ``t`` carries ``min(cols, M - t*cols)`` real
outputs, each of ``(C/G)*R*S`` products. Padded channel lanes, the zeros
between groups and the unused columns of a partial tile are not counted
(the engine's own ``issued_macs`` counts those slots).

``(C/G)*R*S`` comes from the core (``terms``, stable while the layer runs).

``pixel_beats``, ``weight_beats`` and ``out_beats`` count the handshakes on
the core's three streams from ``start`` on: times the ``tdata`` bytes of
each, the bytes a layer moves across the bus. Each beat is counted one
cycle after its handshake.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .helpers import times_constant, times_small

__all__ = ["LayerCounters", "layer_counters_layout"]


def layer_counters_layout() -> data.StructLayout:
    """The counters a layer leaves behind (cleared at ``start``)."""
    return data.StructLayout({"busy_cycles": 32, "macs": 48, "pixel_beats": 32,
                              "weight_beats": 32, "out_beats": 32})


class LayerCounters(wiring.Component):
    """Cycle and real-MAC counters of one layer (see the module docstring).

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    start : In(1)
        The core takes a layer; ``out_channels`` is sampled.
    out_channels : In(unsigned)
    terms : In(unsigned)
        ``(C/G)*R*S`` of the layer, stable while it runs.
    result, result_tile : In(1), In(unsigned)
        A result beat of output tile ``result_tile`` was handed on.
    out_last, stop : In(1)
        The output handshake with ``last``; the layer ended without it.
    streams : In(StructLayout)
        ``valid`` and ``ready`` of the core's ``pixels``, ``weights`` and
        ``out`` streams (a handshake is a beat).
    counters : Out(layer_counters_layout())
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.tile_bits = max(1, ceil_log2(-(-config.max_out_channels // config.array_cols)))
        #: Largest ``(C/G)*R*S``.
        self.terms_max = config.max_in_channels * config.max_kernel * config.max_kernel
        super().__init__({
            "start": In(1),
            "out_channels": In(range(config.max_out_channels + 1)),
            "terms": In(range(self.terms_max + 1)),
            "result": In(1),
            "result_tile": In(self.tile_bits),
            "out_last": In(1),
            "stop": In(1),
            "streams": In(data.StructLayout({
                name: data.StructLayout({"valid": 1, "ready": 1})
                for name in ("pixels", "weights", "out")})),
            "counters": Out(layer_counters_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cols = self.config.array_cols
        ctr = self.counters

        out_channels = Signal.like(self.out_channels)
        with m.If(self.start):
            m.d.sync += out_channels.eq(self.out_channels)

        # ---- real MACs: five stages per result beat --------------------
        # The beat is registered first: the engine's result port is placed
        # far away, and its route should not add to the lane arithmetic.
        # terms * lanes is two registered halves (low and high bits of
        # lanes, a short chain of adds each) and then their sum.
        s0_valid = Signal()
        s0_tile = Signal.like(self.result_tile)
        s1_valid = Signal()
        s1_lanes = Signal(range(cols + 1))
        half = (len(s1_lanes) + 1) // 2
        s2_low = Signal(range(self.terms_max * (1 << half) + 1))
        s2_high = Signal(range(self.terms_max * (1 << (len(s1_lanes) - half)) + 1))
        s3_macs = Signal.like(ctr.macs)
        left = Signal(signed(len(out_channels) + 1))
        m.d.comb += left.eq(out_channels - times_constant(s0_tile, cols))
        m.d.sync += [
            s0_valid.eq(self.result), s0_tile.eq(self.result_tile),
            s1_valid.eq(s0_valid),
            s1_lanes.eq(Mux(left >= cols, cols, left)),
            s2_low.eq(Mux(s1_valid, times_small(self.terms, s1_lanes[:half]), 0)),
            s2_high.eq(Mux(s1_valid, times_small(self.terms, s1_lanes[half:]), 0)),
            s3_macs.eq(s2_low + (s2_high << half)),
        ]

        # Each stream's valid and ready are registered before they are
        # counted: the counters sit by the register file, far from the
        # ports, and the handshake AND of the port's own stage stays there
        # (not shared with the counter). A beat is counted a cycle late (the
        # top reads the counters after its registered `ended`); no beat is
        # taken in the cycle of start.
        seen = Signal.like(self.streams)
        m.d.sync += seen.eq(self.streams)
        beats = [seen.pixels.valid & seen.pixels.ready,
                 seen.weights.valid & seen.weights.ready,
                 seen.out.valid & seen.out.ready]

        # ---- busy cycles: the start edge to the last output handshake ----
        counting = Signal()
        with m.If(self.start):
            m.d.sync += [ctr.busy_cycles.eq(1), ctr.macs.eq(0), counting.eq(1),
                         ctr.pixel_beats.eq(0), ctr.weight_beats.eq(0), ctr.out_beats.eq(0)]
        with m.Else():
            m.d.sync += [ctr.macs.eq(ctr.macs + s3_macs),
                         ctr.pixel_beats.eq(ctr.pixel_beats + beats[0]),
                         ctr.weight_beats.eq(ctr.weight_beats + beats[1]),
                         ctr.out_beats.eq(ctr.out_beats + beats[2])]
            with m.If(counting):
                m.d.sync += ctr.busy_cycles.eq(ctr.busy_cycles + 1)
                with m.If(self.out_last | self.stop):
                    m.d.sync += counting.eq(0)
        return m

