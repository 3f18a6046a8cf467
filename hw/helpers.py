"""Small netlist helpers shared by the hardware blocks.

They keep the generated Verilog lint-clean for every configuration: no
0-bit wires when a dimension has a single value, no compares that the
operand width already decides.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, unsigned

__all__ = ["above", "address", "bad_range", "count_step", "counter", "smallest_of",
           "times_constant", "times_small", "up_down", "up_down_test"]


def counter(limit):
    """A counter for ``0 .. limit - 1``, at least one bit wide."""
    return Signal(range(max(2, limit)))


def address(*fields):
    """Concatenate ``(value, bits)`` fields, low first, skipping 0-bit ones."""
    return Cat(*(value[:bits] for value, bits in fields if bits))


def above(value, limit):
    """``value > limit``, or constant 0 when ``value`` cannot exceed it."""
    if limit >= (1 << len(value)) - 1:
        return Const(0, 1)
    return value > limit


def smallest_of(first, second, limit: int):
    """``(min(first, second, limit), first is the smallest)``, from parallel compares.

    Nesting two ``min``s puts a compare behind a multiplexer behind a
    compare; here all three compares start from the operands and one
    selection follows.
    """
    first_least = (first <= second) & ~above(first, limit)
    second_least = ~first_least & ~above(second, limit)
    return Mux(first_least, first, Mux(second_least, second, limit)), first_least


def bad_range(value, limit):
    """``value == 0`` or ``value > limit``: an invalid size or count."""
    return (value == 0) | above(value, limit)


def count_step(m, running, rest, step, count):
    """One cycle of a division by repeated subtraction: while ``running``,
    ``rest -= step`` and ``count += 1``. Returns ``running``, so that a set-up
    can tell when all its counts are done."""
    with m.If(running):
        m.d.sync += [rest.eq(rest - step), count.eq(count + 1)]
    return running


def times_constant(value, factor: int):
    """``value * factor`` for a constant ``factor >= 0`` as a sum of shifted copies.

    Written out as adders so that synthesis never spends a DSP block on it.
    """
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    terms = [value << bit for bit in range(factor.bit_length()) if factor >> bit & 1]
    if not terms:
        return Const(0, unsigned(1))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def times_small(value, factor):
    """``value * factor`` for a narrow run-time ``factor``, as masked shifted copies.

    One adder per bit of ``factor`` and no DSP block: for the small factors of
    the set-up arithmetic (dilation, lanes in use).
    """
    total = Const(0, unsigned(1))
    for bit in range(len(factor)):
        total = total + Mux(factor[bit], value << bit, 0)
    return total


def up_down(count, up, down):
    """``count + up - down``, with the sums from the register alone: ``up`` and
    ``down`` (late decisions) only choose among them, not ride a carry chain."""
    return Mux(up == down, count, Mux(up, count + 1, count - 1))


def up_down_test(count, flag, up, down, test):
    """``test(up_down(count, up, down))`` for a register ``flag == test(count)``.

    The tests of ``count + 1`` and ``count - 1`` start from the register;
    ``up`` and ``down`` only choose among them and ``flag``.
    """
    return Mux(up == down, flag, Mux(up, test(count + 1), test(count - 1)))
