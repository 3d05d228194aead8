"""The floors of the house (sharedvol/__init__.py) are checked by lint-imports, as `make lint` runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rig.paths import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("sharedvol", "storage", "steps", "pipelines")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")]
    return subprocess.run(cmd, cwd=root, env={"PYTHONPATH": str(root)}, capture_output=True, text=True, check=False)


@pytest.fixture
def house(tmp_path: Path) -> Path:
    """A copy of the four packages and pyproject.toml, to plant imports in."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def plant(house: Path, module: str, line: str) -> None:
    path = house / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_house_keeps_every_contract(house: Path) -> None:
    proc = lint_imports(house)
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("storage.errors", "from pipelines import cli", "pipelines stands on steps and storage"),
        ("steps.errors", "from storage import errors", "pipelines stands on steps and storage"),
        ("sharedvol.errors", "import steps.errors", "pipelines stands on steps and storage"),
        ("storage.specs", "import torch", "storage never imports torch"),
        ("steps.documents", "import kubernetes", "steps never imports kubernetes"),
        ("pipelines.logscan", "from pipelines import follow", "no two modules of one package import each other"),
    ],
)
def test_an_import_against_the_floors_breaks_a_contract(house: Path, module: str, line: str, broken: str) -> None:
    plant(house, module, line)

    proc = lint_imports(house)

    assert proc.returncode == 1
    assert f"{broken}" in proc.stdout and "BROKEN" in proc.stdout
