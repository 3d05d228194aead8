"""The invariant behind a KFP retry: train-resnet killed at any write, rename or removal, then rerun, completes and
test-resnet passes. Fault injection through audit hooks (tests/ml/killpoints.py), no timing involved."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rig.paths import REPO
from steps import checkpoint, dataplane
from tests.ml.training import BATCH, LR, TRAIN_IMAGES, evaluate, train


def train_killed_at(run_dir: Path, dataset: Path, at: int, epochs: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    env |= {"KILLPOINT_ROOT": str(run_dir), "KILLPOINT_AT": str(at), "KILLPOINT_MODE": "kill"}
    cmd = [sys.executable, "-m", "tests.ml.killpoints", "pipelines", "train", "--run-dir", str(run_dir)]
    cmd += ["--data-root", str(dataset), "--epochs", str(epochs), "--batch-size", str(BATCH), "--lr", str(LR)]
    cmd += ["--device", "cpu"]  # the settings the run was started with: a resume with others is refused
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.timeout(1800)  # about 40 trainings of one epoch: 7 min on a quiet 2-core machine, 12 at load 6
def test_a_resumed_run_killed_at_every_write_rename_and_removal_recovers_on_rerun(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    first = checkpoint.require_manifest(dataplane.RunLayout(str(one_epoch)).checkpoint)
    killed_at: list[str] = []
    for at in range(1, 60):
        run_dir = tmp_path / f"killed-at-{at}"
        shutil.copytree(one_epoch, run_dir)
        proc = train_killed_at(run_dir, dataset, at, epochs=2)
        if proc.returncode == 0:
            assert proc.stderr.strip().splitlines()[-1] == f"killpoints: {at - 1}"
            break
        assert proc.returncode == 137, proc.stderr[-3000:]
        killed_at.append(proc.stderr.strip().splitlines()[-1])

        summary = train(run_dir, dataset, 2)  # what KFP's retry does: the same command again

        assert summary.epochs == 2, killed_at[-1]
        assert summary.loss_per_epoch[0] == pytest.approx(first.loss_per_epoch[0])
        assert summary.iterations == 2 * (TRAIN_IMAGES // BATCH)
        result = evaluate(run_dir, dataset)
        assert result.epoch == 2 and result.checkpoint_blake3 == summary.checkpoint_blake3
        names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
        assert len(names) == 3 and all(n == "latest.json" or n.startswith("epoch-0002-") for n in names), names
        shutil.rmtree(run_dir)
    else:
        pytest.fail("the run never got to its end")
    text = "\n".join(killed_at)
    # every step of the publish was a kill point, including after the last epoch's commit
    publish = ("epoch-0002.safetensors.tmp-", "epoch-0002.resume.safetensors.tmp-", "latest.json.tmp-", "os.remove")
    for what in (*publish, "summary.json"):
        assert what in text, f"no kill point at {what}:\n{text}"
