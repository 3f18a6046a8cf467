"""The wheel a plain ``pip install .`` builds holds every file the code opens."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from convaccel.golden.digits import DIGITS_FILE
from convaccel.sim.build import WAIVERS

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> installed package folder (pyproject's package-dir).
PACKAGE_DIRS = {"convaccel": "convaccel", "hw": "convaccel/hw", "golden": "convaccel/golden",
                "host": "convaccel/host", "sim": "convaccel/sim", "scripts": "convaccel/scripts"}


def source_files() -> dict[str, str]:
    """Wheel path -> source path of every file in the package folders (no caches)."""
    files = {}
    for folder, installed in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(ROOT / folder).as_posix()
                files[f"{installed}/{relative}"] = str(path.relative_to(ROOT))
    return files


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    # Build from a copy: setuptools leaves build/ and *.egg-info in the tree.
    tree = tmp_path_factory.mktemp("tree")
    for folder in PACKAGE_DIRS:
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(tree)], check=True, capture_output=True)
    (wheel,) = out.glob("convaccel-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_the_wheel_holds_every_file_of_the_package_folders(wheel_files):
    missing = {source for installed, source in source_files().items()
               if installed not in wheel_files}
    assert not missing, f"not in the wheel (add them to package-data): {sorted(missing)}"


def test_the_wheel_holds_the_data_files_the_code_opens(wheel_files):
    for opened, folder in ((WAIVERS, "sim"), (DIGITS_FILE, "golden")):
        relative = opened.relative_to(ROOT / folder).as_posix()
        assert f"{PACKAGE_DIRS[folder]}/{relative}" in wheel_files
    # `python -m convaccel` and `convaccel.__version__`.
    assert {"convaccel/__init__.py", "convaccel/__main__.py"} <= wheel_files
