"""The job-control port shared by every block that runs one job per ``start``.

The conv core, the window generator, the systolic engine (and its tile
sequencer) and the pooling unit are each started, watched and ended through
the same five signals; :class:`JobControl` names them once, so a block's port
is ``job`` and its members are ``job.start``, ``job.cancel``, ``job.busy``,
``job.done`` and ``job.error`` (``job__start`` ... in the generated Verilog).
"""

from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["JobControl"]


class JobControl(wiring.Signature):
    """Signature of a job-control port: start / cancel in, busy / done / error out.

    The members are given from the controller's side, as a stream's are from
    its source: the controller drives ``start`` and ``cancel``. A block that
    runs jobs therefore declares ``"job": In(JobControl(...))``, and a
    controller that drives one ``Out(JobControl(...))``, so
    :func:`~amaranth.lib.wiring.connect` joins the two when their error
    shapes match.

    Parameters
    ----------
    error_shape : ShapeLike
        Shape of the ``error`` member, at least one bit wide: a plain
        width (1 by default) or a :class:`~amaranth.lib.data.Layout` with
        one field per cause.

    Members
    -------
    start : :py:`Out(1)`
        Pulse to begin a job; the block samples its job's inputs here. A
        block ignores it while ``busy`` unless its own documentation says
        otherwise.
    cancel : :py:`Out(1)`
        End the running job at once (it then ends as the block documents,
        ``done`` included); ignored while idle. A block that its parent
        returns to idle by a reset instead (the systolic engine, its tile
        sequencer) ignores it altogether and says so.
    busy : :py:`In(1)`
        A job is running.
    done : :py:`In(1)`
        The last job has ended (finished, failed or cancelled); stays set
        until the next ``start`` is taken.
    error : :py:`In(error_shape)`
        Why the last job failed, valid with ``done``; cleared when the next
        ``start`` is taken. All zero after a job that finished.
    """

    def __init__(self, error_shape=1):
        try:
            width = Shape.cast(error_shape).width
        except (TypeError, ValueError) as error:
            raise ValueError(f"JobControl error_shape must be a shape (an integer width or a "
                             f"data.Layout), got {error_shape!r}: {error}") from None
        if width == 0:
            raise ValueError(f"JobControl error_shape must be at least 1 bit wide, got "
                             f"{error_shape!r} (a block that never fails keeps the default "
                             f"1-bit error at 0)")
        # A layout is kept as given (its fields name the causes); a plain
        # width becomes a Shape, so JobControl(1) == JobControl(unsigned(1)).
        if not isinstance(error_shape, ShapeCastable):
            error_shape = Shape.cast(error_shape)
        self._error_shape = error_shape
        super().__init__({
            "start": Out(1),
            "cancel": Out(1),
            "busy": In(1),
            "done": In(1),
            "error": In(error_shape),
        })

    @property
    def error_shape(self):
        """The shape of the ``error`` member (a plain width as a :class:`Shape`)."""
        return self._error_shape

    def __eq__(self, other):
        return type(other) is type(self) and other._error_shape == self._error_shape

    def __repr__(self):
        return f"JobControl({self._error_shape!r})"
