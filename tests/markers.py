"""A tier's marker by folder: its conftest marks the tests it holds, so ``-m "not TIER"`` leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest


def mark_folder(items: list[pytest.Item], conftest: str, marker: pytest.MarkDecorator, *, nested: bool = True) -> None:
    """Give ``marker`` to every collected test in the folder of ``conftest`` (its ``__file__``).

    ``nested``: the tests of its subfolders too.
    """
    here = Path(conftest).parent
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == here or (nested and here in path.parents):
            item.add_marker(marker)
