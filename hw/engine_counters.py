"""The systolic engine's performance counters and the stall each idle cycle is charged to.

Each cycle of a running problem is either an issue (a vector entered the
array) or one stall, charged to the first unmet condition of the issue
decision, in the decision's own order:

========== ==========================================================
counter    the cycle waited for
========== ==========================================================
weight     the step's weight tile, or the step's facts (a step of one
           or two vectors: its tile load hides this wait)
drain      the previous reduction tile's sums to be written back
output     room in the output FIFO (after the last issue: the result
           stream's ``ready``)
input      an activation beat
========== ==========================================================

The events are registered before they are counted, so the counters'
adders do not sit behind the issue decision; the counts trail the events
by two cycles.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .helpers import times_small

__all__ = ["EngineCounters", "engine_counters_layout", "issue_status_layout"]


def engine_counters_layout() -> data.StructLayout:
    """Performance counters, cleared at ``start``."""
    return data.StructLayout({
        "busy_cycles": 32,      # cycles from start to the last result beat
        "active_cycles": 32,    # cycles that issued a vector (>= 1 useful MAC)
        "issued_macs": 48,      # products on terms < K and outputs < M (slots a conv may pad)
        "input_stall": 32,      # waiting for the act stream
        "output_stall": 32,     # waiting for room in the output FIFO
        "weight_stall": 32,     # waiting for the next weight tile
        "drain_stall": 32,      # waiting for partial sums to be written back
    })


def issue_status_layout() -> data.StructLayout:
    """The issue decision's inputs and outcome, one cycle of it."""
    return data.StructLayout({
        "running": 1,        # a problem is running
        "issue": 1,          # a vector issued
        "issued_all": 1,     # every vector has issued (the results drain)
        "weights_ok": 1,     # the step's weight tile is loaded
        "settled": 1,        # the step's facts are worked out
        "drain_ok": 1,       # no write-back the step must wait for
        "credit_ok": 1,      # an output FIFO place is free for the vector
        "out_blocked": 1,    # a result waits for the result stream's ready
    })


class EngineCounters(wiring.Component):
    """Busy, issue, MAC and stall counters of the systolic engine (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows`` and ``array_cols``.

    Attributes
    ----------
    clear : In(1)
        Zero every counter (a problem begins).
    status : In(issue_status_layout())
        This cycle's issue decision.
    rows, cols : In(unsigned)
        The issued vector's terms below ``K`` and outputs below ``M``.
    counters : Out(engine_counters_layout())
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__({
            "clear": In(1),
            "status": In(issue_status_layout()),
            "rows": In(range(config.array_rows + 1)),
            "cols": In(range(config.array_cols + 1)),
            "counters": Out(engine_counters_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, st = self.config, self.status
        event = Signal(data.StructLayout({
            "busy": 1, "issue": 1, "weight": 1, "drain": 1, "output": 1, "input": 1}))
        issued_rows = Signal(range(cfg.array_rows + 1))       # 0 when nothing issued
        issued_cols = Signal(range(cfg.array_cols + 1))
        issued = Signal(range(cfg.array_rows * cfg.array_cols + 1))
        waiting = st.running & ~st.issue & ~st.issued_all
        m.d.sync += [
            event.busy.eq(st.running), event.issue.eq(st.issue),
            event.weight.eq(waiting & (~st.weights_ok | ~st.settled)),
            event.drain.eq(waiting & st.weights_ok & st.settled & ~st.drain_ok),
            event.output.eq(st.running & ~st.issue & Mux(
                st.issued_all, st.out_blocked,
                st.weights_ok & st.settled & st.drain_ok & ~st.credit_ok)),
            event.input.eq(waiting & st.weights_ok & st.settled & st.drain_ok & st.credit_ok),
            issued_rows.eq(Mux(st.issue, self.rows, 0)), issued_cols.eq(self.cols),
            issued.eq(times_small(issued_rows, issued_cols)),
        ]
        ctr = self.counters
        with m.If(self.clear):
            m.d.sync += ctr.eq(0)
        with m.Else():
            m.d.sync += [
                ctr.busy_cycles.eq(ctr.busy_cycles + event.busy),
                ctr.active_cycles.eq(ctr.active_cycles + event.issue),
                ctr.issued_macs.eq(ctr.issued_macs + issued),
                ctr.weight_stall.eq(ctr.weight_stall + event.weight),
                ctr.drain_stall.eq(ctr.drain_stall + event.drain),
                ctr.output_stall.eq(ctr.output_stall + event.output),
                ctr.input_stall.eq(ctr.input_stall + event.input),
            ]
        return m
