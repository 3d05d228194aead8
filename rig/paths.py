"""Where the repository is: the one ``REPO`` every test and benchmark uses."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
