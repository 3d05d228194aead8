"""``make image IMAGE=registry/name:tag`` (README) still names the step image as the user asked, besides the three
images the node tier builds."""

from __future__ import annotations

import subprocess

from tests import cluster as cp


def _dry_run(*variables: str) -> str:
    out = subprocess.run(["make", "-n", "image", *variables], cwd=cp.REPO, capture_output=True, text=True, check=True)
    return out.stdout


def test_make_image_with_image_tags_the_built_step_image_with_that_name() -> None:
    plan = _dry_run("IMAGE=registry.example.org/ml/sharedvol:0.1.0")
    assert "scripts/node/image.sh 0.1.0" in plan
    assert "docker tag sharedvol:0.1.0 registry.example.org/ml/sharedvol:0.1.0" in plan


def test_make_image_without_image_builds_and_tags_nothing_else() -> None:
    plan = _dry_run()
    assert "scripts/node/image.sh 0.1.0" in plan
    assert "docker tag sharedvol:0.1.0 sharedvol:0.1.0" not in plan
