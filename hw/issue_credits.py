"""The systolic engine's two in-flight counts, with their "may issue" facts as registers.

A vector that ends a reduction tile before the last one sends its sums back
to the accumulator buffer ``LATENCY`` cycles after its issue; a step that
adds to those sums must wait until none is in flight (``acc_idle``). A
vector of the last reduction tile claims an output-FIFO place at its issue;
the place is returned when a result leaves the FIFO (``credit_left``: a
place is free).

Both facts, and "the count is 1" of each count (on which the next cycle's
facts turn), are flip-flops worked out from the current counts and this
cycle's events, so the issue decision reads them without a compare.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .helpers import up_down, up_down_test

__all__ = ["IssueCredits"]


class IssueCredits(wiring.Component):
    """Partial sums in flight and free output-FIFO places (see the module).

    Parameters
    ----------
    max_in_flight : int
        Most partial-sum vectors that can be in flight at once.
    places : int
        Output-FIFO places (the credits at reset).

    Attributes
    ----------
    issue_acc : In(1)
        A vector whose sums go back to the accumulator buffer issued.
    written : In(1)
        Such a vector's sums were written back.
    issue_out : In(1)
        A vector whose sums go to the output FIFO issued (only while
        ``credit_left``).
    popped : In(1)
        A result left the output FIFO.
    acc_idle : Out(1)
        No partial sum in flight.
    credit_left : Out(1)
        At least one output-FIFO place is not claimed.
    acc_idle_unless_issued : Out(1)
        ``acc_idle`` of the next cycle if no ``issue_acc`` comes this cycle
        (with one, it is 0).
    credit_left_unless_issued, credit_left_if_issued : Out(1)
        ``credit_left`` of the next cycle without and with ``issue_out``
        this cycle (the engine decides a cycle ahead from these).
    """

    def __init__(self, max_in_flight: int, places: int):
        for name, value in (("max_in_flight", max_in_flight), ("places", places)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"IssueCredits {name} must be an int >= 1, got {value!r}")
        self.max_in_flight, self.places = max_in_flight, places
        super().__init__({
            "issue_acc": In(1), "written": In(1), "issue_out": In(1), "popped": In(1),
            "acc_idle": Out(1, init=1), "credit_left": Out(1, init=1),
            "acc_idle_unless_issued": Out(1), "credit_left_unless_issued": Out(1),
            "credit_left_if_issued": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        in_flight = Signal(range(self.max_in_flight + 1))
        credits = Signal(range(self.places + 1), init=self.places)
        # "count == 1" of both counts, as registers beside them.
        one_in_flight = Signal()
        one_credit = Signal(init=self.places == 1)
        # An issue and a write-back together leave a count above zero; so do
        # an output issue and a pop together.
        m.d.comb += [
            self.acc_idle_unless_issued.eq(Mux(self.written, one_in_flight, self.acc_idle)),
            self.credit_left_unless_issued.eq(self.popped | self.credit_left),
            self.credit_left_if_issued.eq(self.popped | ~one_credit),
        ]
        m.d.sync += [
            in_flight.eq(up_down(in_flight, self.issue_acc, self.written)),
            one_in_flight.eq(up_down_test(in_flight, one_in_flight, self.issue_acc, self.written, _is_one)),
            credits.eq(up_down(credits, self.popped, self.issue_out)),
            one_credit.eq(up_down_test(credits, one_credit, self.popped, self.issue_out, _is_one)),
            self.acc_idle.eq(~self.issue_acc & self.acc_idle_unless_issued),
            self.credit_left.eq(Mux(self.issue_out, self.credit_left_if_issued,
                                    self.credit_left_unless_issued)),
        ]
        return m


def _is_one(count):
    return count == 1
