"""Single-source description of a memory-mapped register block.

A :class:`RegisterMap` lists :class:`Register` s (32 bits each, at byte
offsets that are multiples of 4), each made of :class:`Field` s. The same
object generates the hardware (:class:`convaccel.hw.axi_lite.AxiLiteRegisterFile`),
the documentation (:meth:`RegisterMap.to_markdown`), a machine-readable
image (:meth:`RegisterMap.to_json`, read back by :meth:`RegisterMap.from_json`)
and a C header for drivers (:meth:`RegisterMap.to_c_header`), so the four
cannot drift apart. It is plain Python: no Amaranth here.

Field access types (:data:`ACCESS_TYPES`):

``"rw"``
    Read/write. Software owns the value, which drives the hardware.
``"ro"``
    Read-only. The hardware drives the value; writes are ignored. The field's
    ``reset`` is informative only (the value the hardware is expected to show
    after reset); it appears in the docs and the header.
``"pulse"``
    Writing 1 gives a strobe of one clock cycle to the hardware; writing 0
    does nothing; the field reads 0. One bit wide, reset 0.
``"w1c"``
    Sticky status bit: the hardware sets it, software clears it by writing 1
    (writing 0 leaves it alone). One bit wide; ``reset`` is its value after
    reset.

Every name must be a C identifier that starts with a letter, because names
become C macros (upper case) and hardware ports (lower case,
``<register>_<field>``, plus ``<register>_<field>_set`` for ``w1c`` fields).
Names are therefore compared without regard to case, and a map is refused if
two of these derived names (or a register name and a derived name) collide.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping

__all__ = ["ACCESS_TYPES", "REGISTER_WIDTH", "Field", "Register", "RegisterMap"]

#: Width of every register in bits.
REGISTER_WIDTH = 32

#: Field access types and what they mean (also the legend of the Markdown).
ACCESS_TYPES: dict[str, str] = {
    "rw": "read/write; the value drives the hardware",
    "ro": "read-only; the hardware drives the value, writes are ignored",
    "pulse": "write 1 for a one-cycle strobe to the hardware; reads 0",
    "w1c": "sticky bit set by the hardware; write 1 to clear",
}

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"{kind} name {name!r} is not a C identifier (letters, digits and underscores, "
            "starting with a letter)")


def _check_int(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")


def _check_doc(where: str, doc) -> None:
    if not isinstance(doc, str):
        raise ValueError(f"{where}: doc must be a string, got {doc!r}")


def _as_tuple(where: str, what: str, items, kind: type) -> tuple:
    """``items`` as a non-empty tuple of ``kind`` instances."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ValueError(f"{where}: {what} must be a sequence of {kind.__name__}, got {items!r}")
    items = tuple(items)
    if not items:
        raise ValueError(f"{where}: has no {what}")
    for item in items:
        if not isinstance(item, kind):
            raise ValueError(f"{where}: {item!r} is not a {kind.__name__}")
    return items


def _named(items, name: str, where: str, what: str):
    """The item of ``items`` called ``name``; a KeyError listing the names otherwise."""
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"{where} has no {what} {name!r}; {what}s: "
                   f"{', '.join(item.name for item in items)}")


def _bits(lsb: int, width: int) -> str:
    msb = lsb + width - 1
    return f"[{msb}:{lsb}]" if width > 1 else f"[{lsb}]"


@dataclasses.dataclass(frozen=True)
class Field:
    """A bit field of a 32-bit register.

    Parameters
    ----------
    name : str
        C identifier, unique (ignoring case) within its register.
    lsb : int
        Position of the least significant bit, 0..31.
    width : int
        Number of bits, at least 1; ``lsb + width`` must not exceed 32.
    access : str
        One of :data:`ACCESS_TYPES`. ``"pulse"`` and ``"w1c"`` fields are one
        bit wide.
    reset : int
        Value after reset, ``0 <= reset < 2**width`` (0 for ``"pulse"``).
    doc : str
        One-line description for the documentation.

    Raises
    ------
    ValueError
        Naming the field and the offending value.
    """

    name: str
    lsb: int
    width: int
    access: str
    reset: int = 0
    doc: str = ""

    def __post_init__(self):
        _check_name("field", self.name)
        where = f"field {self.name!r}"
        _check_int(f"{where}: lsb", self.lsb)
        _check_int(f"{where}: width", self.width)
        _check_int(f"{where}: reset", self.reset)
        if self.access not in ACCESS_TYPES:
            raise ValueError(f"{where}: unknown access {self.access!r}; choose one of "
                             f"{', '.join(ACCESS_TYPES)}")
        if not 0 <= self.lsb < REGISTER_WIDTH:
            raise ValueError(f"{where}: lsb {self.lsb} is outside 0..{REGISTER_WIDTH - 1}")
        if self.width < 1:
            raise ValueError(f"{where}: width {self.width} must be at least 1")
        if self.msb >= REGISTER_WIDTH:
            raise ValueError(f"{where}: bits {_bits(self.lsb, self.width)} (lsb {self.lsb}, "
                             f"width {self.width}) go beyond bit {REGISTER_WIDTH - 1}")
        if self.access in ("pulse", "w1c") and self.width != 1:
            raise ValueError(f"{where}: a {self.access!r} field is 1 bit wide, got width "
                             f"{self.width}")
        if not 0 <= self.reset < (1 << self.width):
            raise ValueError(f"{where}: reset {self.reset:#x} does not fit in {self.width} "
                             f"bit(s)")
        if self.access == "pulse" and self.reset:
            raise ValueError(f"{where}: a 'pulse' field resets to 0, got reset {self.reset}")
        _check_doc(where, self.doc)

    @property
    def msb(self) -> int:
        """Position of the most significant bit."""
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        """The field's bits in place in the register (e.g. ``0x0000ff00``)."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def bits(self) -> str:
        """Bit range as written in the docs: ``"[15:8]"`` or ``"[3]"``."""
        return _bits(self.lsb, self.width)

    @property
    def readable_reset(self) -> int:
        """What a read returns right after reset (``pulse`` fields read 0)."""
        return 0 if self.access == "pulse" else self.reset


@dataclasses.dataclass(frozen=True)
class Register:
    """A 32-bit register: a byte offset and its fields.

    Parameters
    ----------
    name : str
        C identifier, unique (ignoring case) within the map.
    offset : int
        Byte offset, a non-negative multiple of 4.
    fields : iterable of Field
        At least one; bits must not overlap. Stored as a tuple, in the order
        given.
    doc : str
        One-line description.

    Raises
    ------
    ValueError
        Naming the register (and field) and the offending value.
    """

    name: str
    offset: int
    fields: tuple[Field, ...]
    doc: str = ""

    def __post_init__(self):
        _check_name("register", self.name)
        where = f"register {self.name!r}"
        _check_int(f"{where}: offset", self.offset)
        if self.offset < 0 or self.offset % 4:
            raise ValueError(f"{where}: offset {self.offset:#x} is not a non-negative "
                             "multiple of 4")
        object.__setattr__(self, "fields", _as_tuple(where, "fields", self.fields, Field))
        names: dict[str, str] = {}
        owner: dict[int, Field] = {}
        for item in self.fields:
            if item.name.lower() in names:
                raise ValueError(f"{where}: field name {item.name!r} is used twice (as "
                                 f"{names[item.name.lower()]!r}; names ignore case)")
            names[item.name.lower()] = item.name
            for bit in range(item.lsb, item.msb + 1):
                if bit in owner:
                    raise ValueError(
                        f"{where}: field {item.name!r} {item.bits} overlaps field "
                        f"{owner[bit].name!r} {owner[bit].bits} at bit {bit}")
                owner[bit] = item
        _check_doc(where, self.doc)

    @property
    def reset(self) -> int:
        """The 32-bit value a read returns right after reset.

        ``ro`` fields count with their (informative) reset values, ``pulse``
        fields as 0.
        """
        return self.pack({f.name: f.readable_reset for f in self.fields})

    def field(self, name: str) -> Field:
        """The field called ``name`` (exact spelling).

        Raises
        ------
        KeyError
            If there is none; the message lists the fields.
        """
        return _named(self.fields, name, f"register {self.name!r}", "field")

    def pack(self, values: Mapping[str, int]) -> int:
        """Build a register word from ``{field name: value}`` (missing fields are 0).

        Raises
        ------
        ValueError
            If a value does not fit its field.
        """
        word = 0
        for name, value in values.items():
            item = self.field(name)
            if not 0 <= value < (1 << item.width):
                raise ValueError(f"register {self.name!r} field {name!r}: value {value!r} does "
                                 f"not fit in {item.width} bit(s)")
            word |= value << item.lsb
        return word

    def unpack(self, word: int) -> dict[str, int]:
        """Split a register word into ``{field name: value}`` (other bits ignored)."""
        return {f.name: (word >> f.lsb) & ((1 << f.width) - 1) for f in self.fields}


@dataclasses.dataclass(frozen=True)
class RegisterMap:
    """A named set of registers: the one source for RTL, docs, JSON and C header.

    Parameters
    ----------
    name : str
        C identifier; the default prefix of the C macros.
    registers : iterable of Register
        At least one; names (ignoring case) and offsets unique. Stored as a
        tuple, in the order given.
    doc : str
        Description (a paragraph of the Markdown).

    Raises
    ------
    ValueError
        Naming the registers involved and the offending value.
    """

    name: str
    registers: tuple[Register, ...]
    doc: str = ""

    def __post_init__(self):
        _check_name("register map", self.name)
        where = f"register map {self.name!r}"
        object.__setattr__(self, "registers",
                           _as_tuple(where, "registers", self.registers, Register))
        offsets: dict[int, Register] = {}
        derived: dict[str, str] = {}  # lower-case name -> what it came from

        def claim(name: str, origin: str):
            key = name.lower()
            if key in derived:
                raise ValueError(f"{where}: name {key!r} of {origin} collides with "
                                 f"{derived[key]} (names ignore case)")
            derived[key] = origin

        for reg in self.registers:
            if reg.offset in offsets:
                raise ValueError(f"{where}: register {reg.name!r} has offset {reg.offset:#x}, "
                                 f"already used by register {offsets[reg.offset].name!r}")
            offsets[reg.offset] = reg
            claim(reg.name, f"register {reg.name!r}")
        for reg in self.registers:
            for item in reg.fields:
                origin = f"field {reg.name}.{item.name}"
                claim(f"{reg.name}_{item.name}", origin)
                if item.access == "w1c":
                    claim(f"{reg.name}_{item.name}_set", f"the set input of {origin}")
        _check_doc(where, self.doc)

    # -- look-ups -------------------------------------------------------------

    def register(self, name: str) -> Register:
        """The register called ``name`` (exact spelling).

        Raises
        ------
        KeyError
            If there is none; the message lists the registers.
        """
        return _named(self.registers, name, f"register map {self.name!r}", "register")

    def field(self, reg: str | Register, name: str) -> Field:
        """The field ``name`` of register ``reg`` (a name or a :class:`Register`)."""
        return (reg if isinstance(reg, Register) else self.register(reg)).field(name)

    def register_at(self, offset: int) -> Register | None:
        """The register at byte ``offset`` exactly, or ``None``."""
        for reg in self.registers:
            if reg.offset == offset:
                return reg
        return None

    @property
    def address_width(self) -> int:
        """Byte-address bits that reach every register (at least 2: one 32-bit word)."""
        return max(2, max(reg.offset for reg in self.registers).bit_length())

    # -- exporters ------------------------------------------------------------

    def to_dict(self) -> dict:
        """Plain ``dict``/``list`` image (what :meth:`to_json` writes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, image: Mapping) -> RegisterMap:
        """Rebuild (and validate) a map from :meth:`to_dict`'s image."""
        try:
            return cls(
                name=image["name"], doc=image.get("doc", ""),
                registers=[Register(name=reg["name"], offset=reg["offset"],
                                    doc=reg.get("doc", ""),
                                    fields=[Field(**item) for item in reg["fields"]])
                           for reg in image["registers"]])
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a register map image: {error!r}") from None

    def to_json(self, *, indent: int | None = 2) -> str:
        """JSON text; :meth:`from_json` turns it back into an equal map."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> RegisterMap:
        """Parse :meth:`to_json`'s text (validating it like the constructor)."""
        return cls.from_dict(json.loads(text))

    def to_markdown(self) -> str:
        """Documentation: a summary table, then one table of fields per register.

        Field rows go from the most significant bit down; bits that belong to
        no field read as 0 and ignore writes.
        """
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = [f"# Register map `{self.name}`", ""]
        if self.doc:
            lines += [self.doc, ""]
        lines += [f"32-bit registers, byte offsets; {self.address_width} address bits. "
                  "Bits outside every field read 0 and ignore writes.", "",
                  "| Access | Meaning |", "| --- | --- |"]
        lines += [f"| {name} | {cell(meaning)} |" for name, meaning in ACCESS_TYPES.items()]
        lines += ["", "| Offset | Register | Reset | Description |", "| --- | --- | --- | --- |"]
        for reg in sorted(self.registers, key=lambda r: r.offset):
            lines.append(f"| 0x{reg.offset:02x} | [{reg.name}](#{reg.name.lower()}) | "
                         f"0x{reg.reset:08x} | {cell(reg.doc)} |")
        for reg in sorted(self.registers, key=lambda r: r.offset):
            lines += ["", f"## {reg.name}", "", f"Offset 0x{reg.offset:02x}, reset value "
                      f"0x{reg.reset:08x}.", ""]
            if reg.doc:
                lines += [reg.doc, ""]
            lines += ["| Bits | Field | Access | Reset | Description |",
                      "| --- | --- | --- | --- | --- |"]
            for item in sorted(reg.fields, key=lambda f: f.lsb, reverse=True):
                lines.append(f"| {item.bits} | {item.name} | {item.access} | {item.reset:#x} | "
                             f"{cell(item.doc)} |")
        return "\n".join(lines) + "\n"

    def to_c_header(self, prefix: str | None = None) -> str:
        """A C header with one macro per register offset and per field property.

        Parameters
        ----------
        prefix : str, optional
            Macro prefix (upper-cased); defaults to the map's name.

        Returns
        -------
        str
            For each register ``PREFIX_REG_OFFSET`` (byte offset) and
            ``PREFIX_REG_RESET`` (the word a read returns after reset); for
            each field ``PREFIX_REG_FIELD_SHIFT`` (its lsb), ``_WIDTH``,
            ``_MASK`` (its bits in place) and ``_RESET`` (its reset value,
            not shifted), after a comment with the field's ``doc``. An
            include guard ``PREFIX_REGS_H``.
        """
        prefix = (self.name if prefix is None else prefix)
        _check_name("C prefix", prefix)
        prefix = prefix.upper()
        guard = f"{prefix}_REGS_H"
        lines = [f"/* Register map {self.name}: generated by convaccel.hw.register_map. */",
                 "/* Do not edit; change the Python register map and regenerate. */",
                 f"#ifndef {guard}", f"#define {guard}", ""]
        for reg in sorted(self.registers, key=lambda r: r.offset):
            base = f"{prefix}_{reg.name.upper()}"
            doc = f": {reg.doc}".replace("*/", "* /") if reg.doc else ""
            lines.append(f"/* {reg.name}{doc} */")
            lines.append(f"#define {base}_OFFSET 0x{reg.offset:08x}u")
            lines.append(f"#define {base}_RESET 0x{reg.reset:08x}u")
            for item in reg.fields:
                name = f"{base}_{item.name.upper()}"
                if item.doc:
                    lines.append(f"/* {reg.name}.{item.name}: "
                                 f"{item.doc.replace('*/', '* /')} */")
                lines.append(f"#define {name}_SHIFT {item.lsb}u")
                lines.append(f"#define {name}_WIDTH {item.width}u")
                lines.append(f"#define {name}_MASK 0x{item.mask:08x}u")
                lines.append(f"#define {name}_RESET 0x{item.reset:x}u")
            lines.append("")
        lines.append(f"#endif /* {guard} */")
        return "\n".join(lines) + "\n"
