"""One mechanism per tier: the folder map of tests/tiers.py, named the same in pyproject.toml, the Makefile and
docs/tests.md; and the unit tier needs nothing but the venv."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from rig.paths import REPO
from tests import tiers

# What a unit test must not need: a program of the machine run or looked up, a built binary, the control plane, a node.
BEYOND_THE_VENV = re.compile(
    r"""(?:which\(|\[\s*)["'](?:chromium|unshare|hadolint|docker|crictl|kubectl|go)["']"""
    r"|\bHADOLINT\b|SHAREDVOL_\w+_BIN|kfpcheck\.binary"
)
CLUSTER_FIXTURES = ("cluster", "api", "namespace", "cluster_objects", "node", "sharedvol")


def test_every_tier_marker_is_registered_with_pytest() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    registered = {line.split(":")[0] for line in config["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(tiers.TIERS.values()) == registered


@pytest.mark.parametrize(("folder", "marker"), tiers.TIERS.items())
def test_docs_tests_md_names_each_tier_folder_with_its_marker(folder: str, marker: str) -> None:
    assert f"`tests/{folder}` (marker `{marker}`)" in (REPO / "docs" / "tests.md").read_text()


def test_every_folder_of_tests_is_a_tier_or_holds_no_tests() -> None:
    loose = [str(path.relative_to(REPO)) for path in (REPO / "tests").rglob("test_*.py") if tiers.tier_of(path) is None]
    assert loose == []


def test_make_unit_runs_the_unit_tier_and_nothing_else() -> None:
    recipe = re.search(r"^unit:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe and recipe.group(1).strip() == "$(RUN) -m pytest -m unit tests/unit"


@pytest.mark.parametrize("path", sorted((REPO / "tests" / "unit").glob("test_*.py")), ids=lambda p: p.name)
def test_no_unit_test_needs_more_than_the_venv(path: Path) -> None:
    text = path.read_text()
    if path.name == Path(__file__).name:
        text = text.split("BEYOND_THE_VENV = ")[0]
    assert BEYOND_THE_VENV.findall(text) == []
    uses = {name for name in CLUSTER_FIXTURES if re.search(rf"def test_\w+\([^)]*\b{name}\b\s*:", text)}
    assert uses == set()


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports (``from a.b import c`` counts as ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_no_module_imports_from_a_conftest() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for folder in ("tests", "rig", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        for name in _imports(path)
        if name == "conftest" or name.endswith(".conftest")
    ]
    assert offenders == []


def test_the_rig_never_imports_the_tests() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / "rig").rglob("*.py"))
        for name in _imports(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert offenders == []
