"""Register map: validation, look-ups, and the JSON, Markdown and C header exporters."""

import json
import subprocess

import pytest

from convaccel.hw.register_map import ACCESS_TYPES, Field, Register, RegisterMap
from convaccel.sim.benches.axi_lite_registers_bench import example_map


def one_field_register(name="r", offset=0, **field):
    """A register holding one field (keyword arguments override a 1-bit rw field at bit 0)."""
    spec = {"name": "f", "lsb": 0, "width": 1, "access": "rw"} | field
    return Register(name, offset, [Field(**spec)])


def awkward_map():
    """Docs with characters that Markdown, JSON and C comments treat specially."""
    return RegisterMap("awkward", [
        Register("A", 0x0, [Field("x", 0, 32, "rw", reset=0xffffffff, doc='a | b "quoted"')],
                 doc="ends a comment */ here"),
        Register("B", 0x100, [Field("flag", 31, 1, "w1c", reset=1, doc="line\nbreak"),
                              Field("go", 0, 1, "pulse")]),
    ], doc="Edge cases.")


@pytest.mark.parametrize("make, message", [
    (lambda: Field("1x", 0, 1, "rw"), r"field name '1x' is not a C identifier"),
    (lambda: Field("a-b", 0, 1, "rw"), r"field name 'a-b' is not a C identifier"),
    (lambda: Field("_x", 0, 1, "rw"), r"field name '_x' is not a C identifier"),
    (lambda: Field("f", 32, 1, "rw"), r"field 'f': lsb 32 is outside 0\.\.31"),
    (lambda: Field("f", -1, 1, "rw"), r"field 'f': lsb -1 is outside 0\.\.31"),
    (lambda: Field("f", 0, 0, "rw"), r"field 'f': width 0 must be at least 1"),
    (lambda: Field("f", 30, 4, "rw"), r"field 'f': bits \[33:30\] .* go beyond bit 31"),
    (lambda: Field("f", "3", 1, "rw"), r"field 'f': lsb must be an integer, got '3'"),
    (lambda: Field("f", 0, 1, "wo"), r"field 'f': unknown access 'wo'"),
    (lambda: Field("f", 0, 4, "rw", reset=16), r"field 'f': reset 0x10 does not fit in 4 bit"),
    (lambda: Field("f", 0, 4, "rw", reset=-1), r"field 'f': reset -0x1 does not fit in 4 bit"),
    (lambda: Field("f", 0, 2, "w1c"), r"field 'f': a 'w1c' field is 1 bit wide, got width 2"),
    (lambda: Field("f", 0, 3, "pulse"), r"field 'f': a 'pulse' field is 1 bit wide, got width 3"),
    (lambda: Field("f", 0, 1, "pulse", reset=1), r"field 'f': a 'pulse' field resets to 0"),
    (lambda: one_field_register(name="my reg"), r"register name 'my reg' is not a C identifier"),
    (lambda: one_field_register(offset=6), r"register 'r': offset 0x6 is not a non-negative "
                                           r"multiple of 4"),
    (lambda: one_field_register(offset=-4), r"register 'r': offset -0x4 is not"),
    (lambda: Register("r", 0, []), r"register 'r': has no fields"),
    (lambda: Register("r", 0, [Field("a", 0, 4, "rw"), Field("b", 3, 2, "rw")]),
     r"register 'r': field 'b' \[4:3\] overlaps field 'a' \[3:0\] at bit 3"),
    (lambda: Register("r", 0, [Field("go", 0, 1, "rw"), Field("GO", 1, 1, "rw")]),
     r"register 'r': field name 'GO' is used twice"),
    (lambda: RegisterMap("m", []), r"register map 'm': has no registers"),
    (lambda: RegisterMap("m", [one_field_register("a", 0), one_field_register("A", 4)]),
     r"register map 'm': name 'a' of register 'A' collides with register 'a'"),
    (lambda: RegisterMap("m", [one_field_register("a", 4), one_field_register("b", 4)]),
     r"register map 'm': register 'b' has offset 0x4, already used by register 'a'"),
    (lambda: RegisterMap("m", [one_field_register("a_f", 0), one_field_register("a", 4)]),
     r"name 'a_f' of field a\.f collides with register 'a_f'"),
    (lambda: RegisterMap("m", [Register("a", 0, [Field("x", 0, 1, "w1c"),
                                                 Field("x_set", 1, 1, "rw")])]),
     r"name 'a_x_set' of field a\.x_set collides with the set input of field a\.x"),
    (lambda: RegisterMap("2m", [one_field_register()]), r"register map name '2m' is not a C"),
    (lambda: RegisterMap.from_json('{"name": "m"}'), r"not a register map image"),
    (lambda: RegisterMap.from_json(json.dumps({"name": "m", "registers": [
        {"name": "r", "offset": 0, "fields": [{"name": "f", "lsb": 0, "width": 1,
                                               "access": "rw", "colour": "red"}]}]})),
     r"not a register map image"),
    (lambda: example_map().to_c_header(prefix="9lives"), r"C prefix name '9lives' is not a C"),
])
def test_invalid_descriptions_are_refused_with_a_clear_message(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_lookups_reset_values_and_packing():
    regmap = example_map()
    status = regmap.register("status")
    assert regmap.field("status", "count") is status.field("count")
    assert regmap.field(status, "done").access == "w1c"
    assert regmap.register_at(0x08).name == "scale" and regmap.register_at(0x0c) is None
    # Hand-checked from the example map's field resets.
    assert [reg.reset for reg in regmap.registers] == [0x4, 0x200, 0x00123450, 0xa500beef]
    assert status.pack({"busy": 1, "count": 0xcafe}) == 0xcafe0001
    assert status.unpack(0xcafe0301) == {"busy": 1, "done": 1, "error": 1, "count": 0xcafe}
    with pytest.raises(ValueError, match=r"field 'busy': value 2 does not fit in 1 bit"):
        status.pack({"busy": 2})
    with pytest.raises(KeyError, match=r"no register 'nope'; registers: ctrl, status"):
        regmap.register("nope")
    with pytest.raises(KeyError, match=r"register 'ctrl' has no field 'busy'; fields: enable"):
        regmap.field("ctrl", "busy")


@pytest.mark.parametrize("offsets, width", [([0], 2), ([0, 4], 3), ([0x0c], 4), ([0x10], 5),
                                            ([0x8, 0x100], 9)])
def test_address_width_reaches_the_largest_offset(offsets, width):
    regmap = RegisterMap("m", [one_field_register(f"r{i}", offset)
                               for i, offset in enumerate(offsets)])
    assert regmap.address_width == width


@pytest.mark.parametrize("make", [example_map, awkward_map])
def test_json_round_trip_gives_an_equal_map(make):
    regmap = make()
    text = regmap.to_json()
    again = RegisterMap.from_json(text)
    assert again == regmap
    assert again.to_json() == text
    image = json.loads(text)
    assert [r["name"] for r in image["registers"]] == [r.name for r in regmap.registers]


@pytest.mark.parametrize("make", [example_map, awkward_map])
def test_markdown_lists_every_register_and_field(make):
    regmap = make()
    text = regmap.to_markdown()
    for access in ACCESS_TYPES:
        assert f"| {access} |" in text
    for reg in regmap.registers:
        assert f"\n## {reg.name}\n" in text
        assert f"| 0x{reg.offset:02x} | [{reg.name}]" in text
        for item in reg.fields:
            doc = item.doc.replace("|", "\\|").replace("\n", " ")
            assert f"| {item.bits} | {item.name} | {item.access} | {item.reset:#x} | {doc} |" \
                in text, (reg.name, item.name)


def test_markdown_bit_ranges_by_hand():
    text = example_map().to_markdown()
    assert "| [23:4] | value | rw | 0x12345 | A multi-byte value. |" in text
    assert "| [8] | start | pulse | 0x0 | Start one job. |" in text
    assert "| 0x10 | [threshold](#threshold) | 0xa500beef |" in text


def c_program(regmap, prefix):
    """A C program that includes the header twice and prints every macro."""
    lines = ['#include <stdio.h>', '#include "regs.h"', '#include "regs.h"',
             "int main(void) {"]
    for reg in regmap.registers:
        base = f"{prefix}_{reg.name.upper()}"
        lines.append(f'    printf("{reg.name} %lu %lu\\n", (unsigned long){base}_OFFSET, '
                     f"(unsigned long){base}_RESET);")
        for item in reg.fields:
            name = f"{base}_{item.name.upper()}"
            lines.append(
                f'    printf("{reg.name}.{item.name} %lu %lu %lu %lu\\n", '
                + ", ".join(f"(unsigned long){name}_{what}"
                            for what in ("SHIFT", "WIDTH", "MASK", "RESET")) + ");")
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("make, prefix", [(example_map, None), (awkward_map, "acc")])
def test_c_header_compiles_and_macros_match_the_map(make, prefix, tmp_path):
    regmap = make()
    (tmp_path / "regs.h").write_text(regmap.to_c_header(prefix))
    (tmp_path / "main.c").write_text(c_program(regmap, (prefix or regmap.name).upper()))
    strict = ["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"]
    subprocess.run(["gcc", "-fsyntax-only", "-x", "c", *strict, "main.c"], cwd=tmp_path,
                   check=True)
    subprocess.run(["gcc", *strict, "-o", "regs", "main.c"], cwd=tmp_path, check=True)
    printed = subprocess.run([str(tmp_path / "regs")], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    expected = []
    for reg in regmap.registers:
        reset = 0
        for item in reg.fields:
            reset |= (0 if item.access == "pulse" else item.reset) << item.lsb
        expected.append(f"{reg.name} {reg.offset} {reset}")
        for item in reg.fields:
            mask = ((1 << item.width) - 1) << item.lsb
            expected.append(f"{reg.name}.{item.name} {item.lsb} {item.width} {mask} "
                            f"{item.reset}")
    assert printed == expected


def test_c_header_by_hand():
    header = example_map().to_c_header()
    assert "#ifndef AXIL_EXAMPLE_REGS_H\n#define AXIL_EXAMPLE_REGS_H\n" in header
    assert "#define AXIL_EXAMPLE_THRESHOLD_OFFSET 0x00000010u\n" in header
    assert "#define AXIL_EXAMPLE_SCALE_VALUE_MASK 0x00fffff0u\n" in header
    assert "#define AXIL_EXAMPLE_SCALE_VALUE_RESET 0x12345u\n" in header
    assert header.rstrip().endswith("#endif /* AXIL_EXAMPLE_REGS_H */")
