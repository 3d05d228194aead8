"""Every pipeline variant compiled once per session, and the KFP backend checker (built once, cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import pipeline
from tests import kfpcheck
from tests.kfp_backend.variants import VARIANTS


@pytest.fixture(scope="session")
def checker() -> Path:
    return kfpcheck.binary()


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("variants")
    return {name: pipeline.compile_to(opts, out / f"{name}.yaml").path for name, opts in VARIANTS.items()}
