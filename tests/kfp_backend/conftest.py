"""Every pipeline variant compiled once per session, and the KFP backend checker (built once, cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import options, pipeline
from tests import kfpcheck

# The variants `sharedvol compile` writes: claim per run, existing claim, static PV, KFP's workspace.
SELECTOR = {"nvidia.com/gpu.present": "true"}
TOLERATIONS = (*options.CompileOptions().tolerations, options.Toleration.parse("dedicated=ml:NoExecute"))
VARIANTS = {
    "claim-per-run": options.CompileOptions(
        storage=options.StorageChoice.dynamic("sharedvol-nfs"), node_selector=SELECTOR, tolerations=TOLERATIONS
    ),
    "existing-claim": options.CompileOptions(
        storage=options.StorageChoice.existing("team-data"), node_selector=SELECTOR, tolerations=TOLERATIONS
    ),
    "static-pv": options.CompileOptions(
        storage=options.StorageChoice.static("sharedvol-pv-0"), node_selector=SELECTOR, tolerations=TOLERATIONS
    ),
    "workspace": options.CompileOptions(
        storage=options.StorageChoice.dynamic("sharedvol-nfs"),
        node_selector=SELECTOR,
        tolerations=TOLERATIONS,
        workspace=True,
    ),
}


@pytest.fixture(scope="session")
def checker() -> Path:
    return kfpcheck.binary()


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("variants")
    return {name: pipeline.compile_to(opts, out / f"{name}.yaml").path for name, opts in VARIANTS.items()}
