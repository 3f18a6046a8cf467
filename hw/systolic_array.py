"""Weight-stationary systolic grid of MAC processing elements.

``rows x cols`` :class:`~convaccel.hw.mac_pe.MacPE` cells. Row ``r`` holds
reduction term ``k = r`` of the current weight tile, column ``c`` output
channel ``c``: PE ``(r, c)`` keeps weight ``W[r][c]``. Each cycle one
activation vector ``a[0..rows-1]`` (a slice of one output pixel's window)
enters, and ``rows + cols + 2`` cycles later ``cols`` sums
``psum_in[c] + sum_r a[r] * W[r][c]`` leave::

    act[0] ------------> PE(0,0) -> PE(0,1) -> ... -> PE(0,cols-1)
    act[1] -> [1 reg] -> PE(1,0) -> PE(1,1) -> ...        |
    ...                    |          |                   v
                      (partial sums flow down each column)
                           v          v
                      [cols-1 regs] [cols-2 regs] ... [0 regs] -> psum_out

Why weight-stationary: a weight is loaded once per tile and reused for every
vector of the tile, so the array needs one new activation vector per cycle
(``rows`` values: exactly what a window generator produces for one output
position) and no per-cycle weight bandwidth. The price is two weight
registers per PE (active + shadow, for double buffering) and a partial-sum
register of ``acc_width`` bits per PE; the reduction beyond ``rows`` terms is
folded over time by feeding the earlier sum back in through ``psum_in``.

Skew and de-skew live inside: ``act``, ``swap`` and ``psum_in`` are plain
vectors presented together, ``psum_out`` is a plain vector. Every link
between cells is a register; the only signals reaching every cell are the
clock and reset.

Timing contract (cycle numbers relative to a vector presented at cycle ``S``):

* its results appear on ``psum_out`` with ``out_valid`` at ``S + LATENCY``,
  ``LATENCY = rows + cols + 2`` (one cycle per cell of its path, plus the
  local activation, product and product-copy registers of the last PE);
* ``swap`` presented at cycle ``S`` makes every PE multiply the vectors
  from ``S + 1`` on (the tile's first vector comes the cycle after its swap)
  by the weight in its shadow register;
* the weight-load beat for row ``r`` of the *next* tile may be presented at
  any cycle in ``[S + LOAD_GUARD, S']``, where ``S`` is the cycle of the
  current tile's swap and ``S'`` the next one's. The load beats travel down
  each column and enter column ``c`` ``c`` cycles late, as the swap flag
  does, so a beat never overtakes the swap it must follow, whatever the
  array's width. A full tile takes ``rows`` beats, so tiles of at least
  ``rows + LOAD_GUARD`` vectors follow each other without a bubble.

There is no stall input: vectors without ``act_valid`` are bubbles that flow
through and come out with ``out_valid`` low. Flow control belongs to the
sequencer around the array.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .mac_pe import MacPE

__all__ = ["SystolicArray", "array_latency"]


def array_latency(config: AccelConfig) -> int:
    """Cycles from a vector at the array's inputs to its sums at ``psum_out``.

    One per cell of the longest path (``rows + cols - 1``) plus the last
    PE's activation, product and product-copy registers.
    """
    return config.array_rows + config.array_cols - 1 + MacPE.PRODUCT_DELAY


class SystolicArray(wiring.Component):
    """Grid of ``array_rows x array_cols`` weight-stationary MAC cells.

    Parameters
    ----------
    config : AccelConfig
        ``array_rows``, ``array_cols`` and the data widths.

    Attributes
    ----------
    act : In(ArrayLayout(signed(act_width), rows))
        Activation vector, element ``r`` for row ``r``.
    act_valid : In(1)
        ``act`` is a real vector (else a bubble).
    swap : In(1)
        The *next* vector is the first of a new weight tile (presented one
        cycle ahead of it, so the PEs need no multiplexer before the
        multiplier).
    psum_in : In(ArrayLayout(signed(acc_width), cols))
        Starting partial sum per column for this vector.
    wload_data : In(ArrayLayout(signed(weight_width), cols))
        One row of the next weight tile.
    wload_row : In(unsigned)
        Which row ``wload_data`` belongs to.
    wload_valid : In(1)
        Load ``wload_data`` into the shadow registers of row ``wload_row``.
    psum_out : Out(ArrayLayout(signed(acc_width), cols))
        ``psum_in + act . W`` for the vector presented ``LATENCY`` cycles ago.
    out_valid : Out(1)
        ``psum_out`` belongs to a real vector.
    """

    #: Cycles after a swap before the next tile's first load beat may come.
    LOAD_GUARD = 1

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.rows, self.cols = config.array_rows, config.array_cols
        #: Cycles from a vector at the inputs to its sums at ``psum_out``.
        self.latency = array_latency(config)
        acc = signed(config.acc_width)
        super().__init__({
            "act": In(data.ArrayLayout(signed(config.act_width), self.rows)),
            "act_valid": In(1),
            "swap": In(1),
            "psum_in": In(data.ArrayLayout(acc, self.cols)),
            "wload_data": In(data.ArrayLayout(signed(config.weight_width), self.cols)),
            "wload_row": In(max(1, ceil_log2(self.rows))),
            "wload_valid": In(1),
            "psum_out": Out(data.ArrayLayout(acc, self.cols)),
            "out_valid": Out(1),
        })

    @staticmethod
    def _delayed(m, signal, cycles, name, *, flag=False):
        """``signal`` through ``cycles`` registers (a skew line). Only a
        ``flag`` line is reset: data lines are qualified by the flags beside
        them, and a reset reaching every data bit would be a wide net."""
        for stage in range(cycles):
            register = Signal.like(signal, name=f"{name}_d{stage + 1}", reset_less=not flag)
            m.d.sync += register.eq(signal)
            signal = register
        return signal

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        grid = [[MacPE(self.config, row=r) for _ in range(cols)] for r in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = grid[r][c]

        # Row r starts r cycles late, so it meets the partial sum that has
        # travelled down r cells.
        for r in range(rows):
            first = grid[r][0]
            m.d.comb += [
                first.act_in.eq(self._delayed(m, self.act[r], r, f"act_skew{r}")),
                first.swap_in.eq(self._delayed(m, self.swap, r, f"swap_skew{r}", flag=True)),
            ]
            for c in range(1, cols):
                m.d.comb += [
                    grid[r][c].act_in.eq(grid[r][c - 1].act_out),
                    grid[r][c].swap_in.eq(grid[r][c - 1].swap_out),
                ]

        # A PE adds the partial sum arriving PRODUCT_DELAY cycles after its
        # activation (its local activation and product registers in
        # between): column c's top takes psum_in c + PRODUCT_DELAY cycles late.
        for c in range(cols):
            top = grid[0][c]
            skew = c + MacPE.PRODUCT_DELAY
            # The load beat enters column c c cycles late, like the swap
            # flag: a beat presented the cycle after a swap then reaches
            # every PE after the swap has (see LOAD_GUARD).
            m.d.comb += [
                top.psum_in.eq(self._delayed(m, self.psum_in[c], skew, f"psum_skew{c}")),
                top.wload_in.data.eq(self._delayed(m, self.wload_data[c], c, f"wload_skew{c}")),
                top.wload_in.row.eq(self._delayed(m, self.wload_row, c, f"wrow_skew{c}")),
                top.wload_in.valid.eq(
                    self._delayed(m, self.wload_valid, c, f"wvalid_skew{c}", flag=True)),
            ]
            for r in range(1, rows):
                m.d.comb += [
                    grid[r][c].psum_in.eq(grid[r - 1][c].psum_out),
                    grid[r][c].wload_in.eq(grid[r - 1][c].wload_out),
                ]
            # Column c finishes c cycles after column 0: delay the early ones.
            bottom = grid[rows - 1][c].psum_out
            m.d.comb += self.psum_out[c].eq(
                self._delayed(m, bottom, cols - 1 - c, f"psum_deskew{c}"))

        m.d.comb += self.out_valid.eq(
            self._delayed(m, self.act_valid, self.latency, "valid", flag=True))
        return m
