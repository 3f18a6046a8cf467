"""The `convaccel` command line."""

import json
import subprocess
import sys

import pytest

from convaccel.hw import DESIGNS, PRESETS, AccelConfig
from convaccel.scripts.cli import main


def test_console_script_help_lists_the_subcommands():
    # The installed console script, as a user would run it.
    result = subprocess.run([sys.executable, "-m", "convaccel.scripts.cli", "--help"],
                            capture_output=True, text=True, check=True)
    for command in ("generate", "simulate", "demo", "lint", "config"):
        assert command in result.stdout


@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_generate_writes_verilog_for_every_design(preset, tmp_path, capsys):
    assert main(["generate", "--preset", preset, "--out", str(tmp_path)]) == 0
    for design in DESIGNS:
        text = (tmp_path / f"{design}.v").read_text()
        assert f"module {design}(" in text
    assert AccelConfig.from_json((tmp_path / "config.json").read_text()) == PRESETS[preset]


def test_generate_from_a_config_file(tmp_path):
    custom = PRESETS["tiny"].replace(act_width=6, weight_width=4)
    path = tmp_path / "mine.json"
    path.write_text(custom.to_json())
    out = tmp_path / "out"
    assert main(["generate", "--config", str(path), "--out", str(out), "--design", "mac_pe"]) == 0
    text = (out / "mac_pe.v").read_text()
    # 6-bit activations; weight-load beat = 4-bit weight + 1-bit row + valid.
    assert "input [5:0] act_in;" in text and "input [5:0] wload_in;" in text
    assert not (out / "requant_activation.v").exists()


def test_bad_preset_and_bad_design_are_clear_errors(tmp_path, capsys):
    assert main(["generate", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "neither a preset (default, large, tiny)" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path), "--design", "fft"]) == 2
    assert "unknown design 'fft'" in capsys.readouterr().err


def test_config_prints_json(capsys):
    assert main(["config", "--preset", "tiny"]) == 0
    assert AccelConfig.from_dict(json.loads(capsys.readouterr().out)) == PRESETS["tiny"]
