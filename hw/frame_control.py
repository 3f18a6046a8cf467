"""Frame bookkeeping shared by the line-buffer units.

The window generator and the pooling unit take one frame per ``job.start``
on a stream with ``last`` on its final beat, report ``job.done`` and the
``window_error_layout`` bits, and return to ``IDLE`` on ``job.cancel``. These
FSM fragments are the same for both; call them inside the unit's
``m.FSM()`` states.
"""

__all__ = ["FrameControl"]


class FrameControl:
    """FSM fragments for a unit with an input stream ``i`` and a ``job`` port.

    Parameters
    ----------
    m : Module
        The unit's module (inside its FSM).
    unit : wiring.Component
        Has ``i`` (stream with ``payload.last``) and ``job``
        (``JobControl(window_error_layout())``).
    frame_end : Value
        High when the beat on ``i`` is the frame's final one by the count.
    """

    def __init__(self, m, unit, frame_end):
        self.m, self.unit, self.frame_end = m, unit, frame_end

    def finish(self, error_field=None):
        """End the frame: set ``job.done`` (and an error bit)."""
        self.m.d.sync += self.unit.job.done.eq(1)
        if error_field is not None:
            self.m.d.sync += error_field.eq(1)

    def leave_on_cancel(self):
        """Call last in each state, so ``cancel`` wins over the state's own ``m.next``."""
        with self.m.If(self.unit.job.cancel):
            self.m.next = "IDLE"

    def check_frame_end(self):
        """On an accepted beat: ``last`` too early, or missing at the end."""
        m, unit = self.m, self.unit
        with m.If(unit.i.payload.last & ~self.frame_end):
            self.finish(unit.job.error.short_frame)
            m.next = "IDLE"
        with m.Elif(self.frame_end & ~unit.i.payload.last):
            m.d.sync += unit.job.error.long_frame.eq(1)
            m.next = "DISCARD"

    def drain_state(self, more_rows, step_input, outputs_settled):
        """Body of the ``DRAIN`` state: read and drop the rows below the last window.

        Parameters
        ----------
        more_rows : Value
            Input rows of the frame are still to come.
        step_input : callable
            Advances the unit's input counters by one beat.
        outputs_settled : Value
            Nothing is left in the output pipeline.
        """
        m, unit = self.m, self.unit
        m.d.comb += unit.i.ready.eq(more_rows)
        with m.If(unit.i.valid & unit.i.ready):
            step_input()
            self.check_frame_end()
        with m.If(~more_rows & outputs_settled):
            self.finish()
            m.next = "IDLE"
        self.leave_on_cancel()

    def discard_state(self):
        """Body of the ``DISCARD`` state: read and drop beats up to ``last``."""
        m, unit = self.m, self.unit
        m.d.comb += unit.i.ready.eq(1)
        with m.If(unit.i.valid & unit.i.payload.last):
            self.finish()
            m.next = "IDLE"
        self.leave_on_cancel()
