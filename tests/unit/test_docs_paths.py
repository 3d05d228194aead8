"""Every test file the docs name exists where they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rig.paths import REPO

PAGES = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_test_file_a_page_names_exists(page: Path) -> None:
    named = set(re.findall(r"`(tests/[\w/]+\.py)", page.read_text()))
    assert [path for path in sorted(named) if not (REPO / path).is_file()] == []
