"""``make image IMAGE=registry/name:tag`` (README) still names the step image as the user asked, besides the four
images the node tier builds."""

from __future__ import annotations

import subprocess

from rig import images
from rig.paths import REPO

TAG = images.IMAGE_TAG


def _dry_run(*variables: str) -> str:
    out = subprocess.run(["make", "-n", "image", *variables], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout


def test_make_image_with_image_tags_the_built_step_image_with_that_name() -> None:
    plan = _dry_run("IMAGE=registry.example.org/ml/sharedvol:7.1")
    assert f"scripts/node/image.sh {TAG}" in plan
    assert f"docker tag sharedvol:{TAG} registry.example.org/ml/sharedvol:7.1" in plan


def test_make_image_without_image_builds_and_tags_nothing_else() -> None:
    plan = _dry_run()
    assert f"scripts/node/image.sh {TAG}" in plan
    assert "docker tag" not in plan
