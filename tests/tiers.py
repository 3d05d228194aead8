"""The tiers of the tests: the one map from the folder a test lives in to its marker (used by tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

# The one place a test gets its tier: the folder under tests/ it lives in -> its marker (pyproject.toml describes
# each; docs/tests.md says what each needs). The deepest folder wins: tests/kfp_backend/real is kfp_real.
TIERS = {
    "unit": "unit",
    "host": "host",
    "ml": "ml",
    "e2e": "e2e",
    "controlplane": "controlplane",
    "kfp_backend": "kfp_backend",
    "kfp_backend/real": "kfp_real",
    "node": "node",
    "vm": "vm",
}
TESTS = Path(__file__).resolve().parent


def tier_of(path: Path) -> str | None:
    """The marker of the tier folder that holds ``path``, or None."""
    parts = path.resolve().relative_to(TESTS).parts[:-1]
    for depth in range(len(parts), 0, -1):
        marker = TIERS.get("/".join(parts[:depth]))
        if marker:
            return marker
    return None
