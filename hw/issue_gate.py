"""The systolic engine's issue decision, registered a cycle ahead.

The engine may issue its current vector when the step's weight tile is
loaded (for a step's first vector), the tile's earlier partial sums are
written back (when it holds sums that may still be in flight), an output
place is free (when the sums leave), and the sequencer has the next step
worked out (for a step's last vector). Those are a dozen facts from three
blocks, and ``issue`` enables nearly every register of the sequencer: an
AND of the facts in front of that fan-out was the top's critical path.

So the rule is evaluated one cycle early, on the facts each block says it
will hold next cycle, once for "the vector issues now" and once for "it
does not"; the outcome picks one of the two into the ``go`` flip-flop.
``issue`` is then ``go`` and the stream's ``valid``. The rule on the
current facts (``check``) drives only the stall counters and a test that
the two always agree.
"""

from amaranth.hdl import Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .tile_sequencer import step_facts_layout

__all__ = ["IssueGate", "issue_terms_layout"]

#: The rule's four terms on the current facts (for the stall counters).
issue_terms_layout = data.StructLayout({
    "weights_ok": 1, "drain_ok": 1, "credit_ok": 1, "settled": 1})


class IssueGate(wiring.Component):
    """Registered issue decision of the systolic engine (see the module).

    Attributes
    ----------
    running : In(1)
        A problem runs (``go`` is 0 the cycle after it begins: no tile is
        loaded yet).
    now, next_if_idle, next_if_issue : In(step_facts_layout)
        The sequencer's step facts: current, and next cycle's without and
        with an issue this cycle.
    full, full_unless_consumed : In(1)
        The weight loader's tile is loaded, and will be next cycle unless
        a step's first vector issues now.
    acc_idle, acc_idle_unless_issued : In(1)
        No partial sum in flight, now and next cycle unless a vector of an
        earlier reduction tile issues now.
    credit_left, credit_left_unless_issued, credit_left_if_issued : In(1)
        An output place is free, now and next cycle without and with an
        output issue now.
    from_stream, act_valid : In(1)
        The step's slices come from the activation stream, and one waits.
    go : Out(1)
        The registered decision: the current vector may issue.
    issue : Out(1)
        It issues (``go``, and the slice when it comes from the stream).
    act_ready : Out(1)
        The activation stream's ``ready``.
    check : Out(1)
        The rule on the current facts (equal to ``go`` every cycle).
    terms : Out(issue_terms_layout)
        The rule's terms on the current facts.
    """

    def __init__(self):
        super().__init__({
            "running": In(1),
            "now": In(step_facts_layout), "next_if_idle": In(step_facts_layout),
            "next_if_issue": In(step_facts_layout),
            "full": In(1), "full_unless_consumed": In(1),
            "acc_idle": In(1), "acc_idle_unless_issued": In(1),
            "credit_left": In(1), "credit_left_unless_issued": In(1),
            "credit_left_if_issued": In(1),
            "from_stream": In(1), "act_valid": In(1),
            "go": Out(1), "issue": Out(1), "act_ready": Out(1), "check": Out(1),
            "terms": Out(issue_terms_layout),
        })

    def elaborate(self, platform):
        m = Module()
        now = self.now
        allowed, terms = may_issue(now, self.full, self.acc_idle, self.credit_left)
        m.d.comb += [self.check.eq(self.running & allowed)]
        m.d.comb += [getattr(self.terms, name).eq(term) for name, term in terms.items()]
        go_idle, _ = may_issue(self.next_if_idle, self.full_unless_consumed,
                               self.acc_idle_unless_issued, self.credit_left_unless_issued)
        # An issue now consumes the tile (first vector), or puts a partial
        # sum in flight, or claims an output place.
        go_issued, _ = may_issue(
            self.next_if_issue, ~now.first & self.full_unless_consumed,
            now.to_output & self.acc_idle_unless_issued,
            Mux(now.to_output, self.credit_left_if_issued, self.credit_left_unless_issued))
        m.d.sync += self.go.eq(self.running & Mux(self.issue, go_issued, go_idle))
        m.d.comb += [
            self.act_ready.eq(self.go & self.from_stream),
            self.issue.eq(self.go & (~self.from_stream | self.act_valid)),
        ]
        return m


def may_issue(facts, full, acc_idle, credit_left):
    """The issue rule on one set of step facts; returns it and its terms (a dict).

    A step's first vector needs its weight tile (``full``) and, when the
    tile already holds sums that may still be in flight, the write-backs
    done (``acc_idle``); a vector whose sums leave needs an output place
    (``credit_left``); a step's last vector needs the next step worked out.
    """
    terms = {
        "weights_ok": ~facts.first | full,
        "drain_ok": ~(facts.first & facts.has_sums & ~facts.spaced) | acc_idle,
        "credit_ok": ~facts.to_output | credit_left,
        "settled": ~facts.step_end | facts.settled,
    }
    allowed = ~facts.done
    for term in terms.values():
        allowed = allowed & term
    return allowed, terms
