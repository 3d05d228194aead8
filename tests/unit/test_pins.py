"""One place per pin, and a check wherever a second file must agree with it.

The images' tag is sharedvol/version.py's (read by pyproject.toml, the Makefile and scripts/node/image.sh);
kustomize, the Dockerfiles' comments and the docs cannot read it, so they are checked here. KFP's version is pinned
for the Python client in requirements.txt and for the backend's build in scripts/kfp/versions.env.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from rig import cluster as cp
from rig.paths import REPO
from sharedvol import version

# An image this project builds, named without a registry: sharedvol, sharedvol-provisioner, sharedvol-nfs-server.
OUR_IMAGE = re.compile(r"(?<![\w./:-])(sharedvol(?:-provisioner|-nfs-server)?):([\w.-]*\w)")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    paths = [REPO / name for name in out.decode().split("\0") if name]
    return [p for p in paths if p.suffix in {".py", ".md", ".yaml", ".yml", ".sh", ".env", ""} and p.is_file()]


def test_every_image_of_ours_named_anywhere_carries_the_version_tag() -> None:
    wrong = []
    for path in tracked_text_files():
        for name, tag in OUR_IMAGE.findall(path.read_text(errors="replace")):
            if tag != version.IMAGE_TAG and tag not in ("TAG", "<version>"):
                wrong.append(f"{path.relative_to(REPO)}: {name}:{tag}")
    assert wrong == [], f"sharedvol/version.py says {version.IMAGE_TAG}"


@pytest.mark.parametrize("manifest", ["k8s/fallback/daemonset.yaml", "k8s/nfs/server/nfs-server.yaml"])
def test_the_manifests_run_the_images_make_image_builds(manifest: str) -> None:
    images = {f"{n}:{t}" for n, t in OUR_IMAGE.findall((REPO / manifest).read_text())}
    assert images and all(i.endswith(f":{version.IMAGE_TAG}") for i in images)


def test_the_package_version_make_and_image_sh_read_sharedvol_version_py() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert project["version"] == {"attr": "sharedvol.version.VERSION"}
    printed = subprocess.run([str(REPO / "scripts" / "version.sh")], capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == version.VERSION
    assert "IMAGE_TAG ?= $(shell scripts/version.sh)" in (REPO / "Makefile").read_text()


def pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==", 1) for line in lines if "==" in line)


def test_the_kfp_client_and_the_kfp_backend_are_the_same_release() -> None:
    backend = cp.read_env(REPO / "scripts" / "kfp" / "versions.env")["KFP_VERSION"]
    client = pins(REPO / "requirements.txt")
    assert (client["kfp"], client["kfp-kubernetes"]) == (backend, backend)
