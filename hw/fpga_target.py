"""Which FPGA primitives the components may instantiate.

By default every component is plain Amaranth and the synthesis tool infers
block RAMs and multipliers. For ECP5, yosys infers ``DP16KD`` block RAMs
without their output register and ``MULT18X18D`` multipliers without their
input and output registers, so a registered read or a registered product
still pays the primitive's slow clock-to-output plus a routing hop in one
cycle. Elaborated with :data:`ECP5` as the platform
(``rtlil.convert(..., platform=ECP5)``, ``convaccel generate --family ecp5``,
``convaccel synth --family ecp5``), :class:`~.banked_memory.BankedMemory` and
:class:`~.registered_multiplier.RegisteredMultiplier` instantiate the
primitives with those registers switched on. Cycle behaviour is identical for
every target; only the netlist differs.

Any platform object with ``family == "ecp5"`` (for example Amaranth's own
``LatticePlatform`` for an ECP5 device) selects the same primitives.
"""

__all__ = ["ECP5", "FPGATarget", "primitive_family"]

#: Families whose primitives the components know how to instantiate.
FAMILIES = ("ecp5",)


class FPGATarget:
    """A stand-in platform that names only the FPGA family.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    """

    def __init__(self, family: str):
        if family not in FAMILIES:
            raise ValueError(f"FPGATarget family must be one of {', '.join(FAMILIES)}, "
                             f"got {family!r}")
        self.family = family

    def __repr__(self):
        return f"FPGATarget({self.family!r})"


ECP5 = FPGATarget("ecp5")


def primitive_family(platform) -> str | None:
    """The family whose primitives to instantiate, or None for plain logic."""
    family = getattr(platform, "family", None)
    return family if family in FAMILIES else None
