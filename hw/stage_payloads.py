"""The payloads of the conv core's internal streams, one naming across stages.

Every hand-off between the core's units carries one of two beats, so a
stage's output and the next stage's input have the same signature and the
core joins them with :func:`~amaranth.lib.wiring.connect`:

* a *lane beat* (:func:`lane_beat_layout`): ``data``, ``lanes`` activations,
  and ``last``. The window generator sends slices of ``array_rows`` lanes to
  the systolic engine; the requantization sends values of ``array_cols``
  lanes to the pooling unit, which sends the same beats on;
* a *sum beat* (:func:`sum_beat_layout`): ``psum``, ``lanes`` exact sums,
  ``group``, the output tile (channels ``group * lanes ...``), and ``last``.
  The systolic engine sends them to the requantization.

A unit that does not need a field passes it by (the engine's ``act.last``:
its sequencer knows where a problem ends).
"""

from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.utils import ceil_log2

from .config import AccelConfig

__all__ = ["lane_beat_layout", "sum_beat_layout"]


def lane_beat_layout(config: AccelConfig, lanes: int) -> data.StructLayout:
    """``lanes`` signed ``act_width`` activations (``data``) and ``last``."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.act_width), lanes), "last": 1})


def sum_beat_layout(config: AccelConfig, lanes: int) -> data.StructLayout:
    """``lanes`` signed ``acc_width`` sums (``psum``), the channel ``group`` and ``last``.

    ``group`` numbers the groups of ``lanes`` channels up to
    ``max_out_channels`` (at least one bit).
    """
    groups = -(-config.max_out_channels // lanes)
    return data.StructLayout({
        "psum": data.ArrayLayout(signed(config.acc_width), lanes),
        "group": max(1, ceil_log2(groups)), "last": 1})
