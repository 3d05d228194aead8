"""A full disk, for real: a small tmpfs in a private mount namespace (``unshare``), no fake filesystem."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from rig.paths import REPO

FILL = """
import json, os, sys
from steps import checkpoint, errors
from tests.stepdocs import SETTINGS
d = sys.argv[1]
checkpoint.publish(d, epoch=1, weights=b"w" * 100_000, resume=b"r" * 200_000, loss_per_epoch=[1.0], keep=1,
                   settings=SETTINGS)
try:
    checkpoint.publish(d, epoch=2, weights=b"W" * 300_000, resume=b"R" * 3_000_000, loss_per_epoch=[1.0, 0.5], keep=1,
                       settings=SETTINGS)
except errors.StepError as e:
    print(json.dumps({"error": str(e), "left": sorted(os.listdir(d)),
                      "epoch": checkpoint.require_manifest(d + "/latest.json").epoch}))
"""


def in_small_tmpfs(size: str, mount: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` with a tmpfs of ``size`` mounted at ``mount``, visible to that process only."""
    mount.mkdir(parents=True, exist_ok=True)
    script = f"mount -t tmpfs -o size={size} sharedvol-test {shlex.quote(str(mount))} && exec {shlex.join(cmd)}"
    return subprocess.run(
        ["unshare", "--map-root-user", "--mount", "sh", "-c", script],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_full_disk_is_one_line_leaves_no_partial_file_and_keeps_the_previous_epoch(tmp_path: Path) -> None:
    mount = tmp_path / "volume"
    proc = in_small_tmpfs("1m", mount, sys.executable, "-c", FILL, str(mount / "checkpoints"))
    assert proc.returncode == 0, proc.stderr

    out = json.loads(proc.stdout)
    assert out["error"].startswith("no space left on the volume writing ")
    assert "\n" not in out["error"] and "free space or use a bigger volume" in out["error"]
    assert out["epoch"] == 1
    assert len(out["left"]) == 3 and "latest.json" in out["left"]
    assert all(name.startswith("epoch-0001-") for name in out["left"] if name != "latest.json")
