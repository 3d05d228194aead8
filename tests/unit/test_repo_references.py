"""What the packaging and the code's comments point at exists in the repository."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from rig.paths import REPO

PATTERNS = ("storage/**/*.py", "steps/**/*.py", "pipelines/**/*.py", "scripts/**/*", "*.toml", "*.txt", "Makefile")
SOURCES = [p for pattern in PATTERNS for p in REPO.glob(pattern) if p.is_file()]


def test_every_package_data_pattern_in_pyproject_matches_a_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"].get("package-data", {})
    missing = [f"{pkg}/{pat}" for pkg, pats in package_data.items() for pat in pats if not list((REPO / pkg).glob(pat))]
    assert missing == []


def test_every_path_the_linters_exclude_exists() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    excluded = config["tool"]["ruff"].get("extend-exclude", [])
    assert [p for p in excluded if not (REPO / p).exists()] == []


def test_every_document_the_code_cites_is_in_the_repository() -> None:
    # A document of another project is cited with its repository first ("kubernetes-csi/docs book/src/x.md").
    external = re.compile(r"\b[\w-]+/[\w.-]+ [\w./-]*\.md\b")
    cited = {
        (src.relative_to(REPO).as_posix(), name)
        for src in SOURCES
        for line in src.read_text(errors="replace").splitlines()
        for name in re.findall(r"(?<![\"'`\w.-])([\w-]+\.md)\b(?![\"'`])", external.sub("", line))
    }
    docs = {p.name for p in REPO.glob("*.md")} | {p.name for p in (REPO / "docs").glob("*.md")}
    assert sorted((src, name) for src, name in cited if Path(name).name not in docs) == []
