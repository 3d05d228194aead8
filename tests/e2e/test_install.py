"""``make install``: this checkout installed as a package (not editable) into its own environment, linked onto PATH.

A real install: pip builds the package and installs it with its pinned dependencies (from pip's cache after the
test venv's own install), then the linked command runs from another directory with the checkout out of reach.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from rig.paths import REPO
from sharedvol import version


def test_make_install_gives_a_working_sharedvol_command_and_says_what_it_did(tmp_path: Path) -> None:
    home, bin_dir = tmp_path / "share" / "sharedvol", tmp_path / "bin"
    # not the outer make's variables either: under make test, MAKELEVEL would add "Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(SHAREDVOL_HOME=str(home), BIN_DIR=str(bin_dir))
    cmd = ["make", "--no-print-directory", "install"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    venv = home / "venv"
    first, linked, *_ = proc.stdout.splitlines()
    assert linked == f"linked {bin_dir}/sharedvol -> {venv}/bin/sharedvol"
    assert first.startswith(f"installed sharedvol {version.VERSION} into {venv} in ")
    assert first.endswith(" s (pip install of this checkout, not editable)")
    assert (bin_dir / "sharedvol").resolve() == (venv / "bin" / "sharedvol").resolve()

    # not an editable link into the checkout: the package's files are in the environment
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pipelines, steps, storage; print(pipelines.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(venv))
    direct_url = next((venv / "lib").glob("python3.*/site-packages/sharedvol-*.dist-info/direct_url.json"))
    assert not json.loads(direct_url.read_text()).get("dir_info", {}).get("editable", False)

    # the command works from elsewhere, with its dependencies: --help, and a compile (kfp, the golden package data)
    run_env = {**env, "PATH": f"{bin_dir}:{env['PATH']}"}
    helped = subprocess.run(["sharedvol", "--help"], cwd=tmp_path, env=run_env, capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: sharedvol ")
    out = tmp_path / "p.yaml"
    compiled = subprocess.run(
        ["sharedvol", "compile", "-o", str(out)], cwd=tmp_path, env=run_env, capture_output=True, text=True
    )
    assert compiled.returncode == 0, compiled.stderr
    assert f"sharedvol:{version.IMAGE_TAG}" in out.read_text()
