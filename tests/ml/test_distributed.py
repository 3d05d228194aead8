"""train-resnet under torchrun: two CPU ranks (gloo) train one run, rank 0 alone publishes, and a run killed in the
middle of an epoch resumes from the last published one on both ranks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from rig.paths import REPO
from steps import checkpoint, dataplane, distributed, documents, errors, schemas
from tests.ml.training import BATCH, LR, TRAIN_IMAGES, evaluate

RANKS = 2
ITERS_PER_EPOCH = TRAIN_IMAGES // (RANKS * BATCH)  # each rank trains on its share of the epoch


def torchrun(run_dir: Path, dataset: Path, epochs: int, *, kill: tuple[int, int] | None = None) -> str:
    """train-resnet on two CPU ranks; ``kill`` = (rank, iteration): that rank is SIGKILLed after that iteration."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    module = ["pipelines"]
    if kill:
        env |= {"RANKKILL_RANK": str(kill[0]), "RANKKILL_ITER": str(kill[1])}
        module = ["tests.ml.rankkill", "pipelines"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS)]
    cmd += ["-m", *module, "train", "--run-dir", str(run_dir), "--data-root", str(dataset), "--epochs", str(epochs)]
    cmd += ["--batch-size", str(BATCH), "--lr", str(LR), "--device", "cpu", "--log-interval", "100"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    if kill:
        assert proc.returncode != 0, out[-3000:]
        assert f"rankkill: rank {kill[0]} killed after iteration {kill[1]}" in out, out[-3000:]
    else:
        assert proc.returncode == 0, out[-3000:]
    return out


def published(out: str) -> list[str]:
    """The epochs the output says were published, one entry per publish."""
    return re.findall(r"epoch (\d+)/\d+: mean loss [0-9.]+; published", out)


def summary_of(run_dir: Path) -> schemas.TrainSummary:
    return documents.read(dataplane.RunLayout(str(run_dir)).summary, schemas.TrainSummary)


def test_two_ranks_publish_each_epoch_once_and_see_the_whole_dataset_per_epoch(dataset: Path, tmp_path: Path) -> None:
    out = torchrun(tmp_path / "run", dataset, epochs=2)

    assert published(out) == ["1", "2"]
    assert out.count("steps.train_resnet: trained 2 epochs") == RANKS  # both ranks trained to the end
    summary = summary_of(tmp_path / "run")
    assert summary.epochs == 2 and summary.resumed_from_epoch == 0
    assert summary.images_seen == 2 * TRAIN_IMAGES
    assert summary.iterations == 2 * ITERS_PER_EPOCH
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert len(names) == 3 and all(n == "latest.json" or n.startswith("epoch-0002-") for n in names), names
    assert evaluate(tmp_path / "run", dataset).checkpoint_blake3 == summary.checkpoint_blake3


def test_a_rank_killed_mid_epoch_resumes_on_both_ranks_from_the_last_published_epoch(
    dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    killed = torchrun(run_dir, dataset, epochs=2, kill=(0, ITERS_PER_EPOCH + 1))  # the publisher, in epoch 2
    first = checkpoint.require_manifest(dataplane.RunLayout(str(run_dir)).checkpoint)
    assert published(killed) == ["1"] and first.epoch == 1

    out = torchrun(run_dir, dataset, epochs=2)

    assert out.count("resuming from epoch 1 (") == RANKS  # each rank read and verified the same manifest
    assert published(out) == ["2"]
    summary = summary_of(run_dir)
    assert summary.resumed_from_epoch == 1 and summary.epochs == 2
    assert summary.loss_per_epoch[0] == pytest.approx(first.loss_per_epoch[0], abs=1e-6)
    assert summary.images_seen == TRAIN_IMAGES and summary.iterations == 2 * ITERS_PER_EPOCH
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(names) == 3 and all(n == "latest.json" or n.startswith("epoch-0002-") for n in names), names
    result = evaluate(run_dir, dataset)
    assert result.epoch == 2 and result.checkpoint_blake3 == summary.checkpoint_blake3


RANK_CODE = """
import os
from steps import distributed, errors
def say(line):  # one write per line: the ranks share the pipe
    os.write(1, (line + "\\n").encode())
distributed.init("cpu")
rank = int(os.environ["RANK"])
say(f"rank {rank} sums {distributed.sum_over_ranks([rank + 1.0, 1.0])}")
distributed.agree("the published epoch to start from", (1, "same"))
try:
    distributed.agree("the published epoch to start from", (rank + 1, "digest"))
except errors.IntegrityError as e:
    say(f"rank {rank} refused: {e}")
distributed.finish()  # else gloo's teardown at exit could abort a rank after its work (exit -6)
"""


def test_ranks_that_read_different_epochs_refuse_to_start_naming_what_each_read(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS)]
    cmd += ["--no-python", sys.executable, "-c", RANK_CODE]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    refusal = (
        "refused: the ranks do not agree on the published epoch to start from "
        "(rank 0: (1, 'digest'); rank 1: (2, 'digest')): every rank must mount the same run directory; "
        "check the volume each worker mounts"
    )
    assert lines == [f"rank 0 {refusal}", "rank 0 sums [3.0, 2.0]", f"rank 1 {refusal}", "rank 1 sums [3.0, 2.0]"]


def test_without_torchrun_train_resnet_is_one_process_with_mmengine_s_none_launcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    c = Config({})

    distributed.configure(c)

    assert c.launcher == "none" and "model_wrapper_cfg" not in c
    assert distributed.rank() == 0 and distributed.is_publisher()
    assert distributed.sum_over_ranks([1.5, 2.0]) == [1.5, 2.0]


def test_under_torchrun_the_pytorch_launcher_wraps_the_model_in_ddp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    c = Config({})

    distributed.configure(c)

    assert c.launcher == "pytorch"
    assert c.model_wrapper_cfg == {"type": "SharedvolDDP", "broadcast_buffers": False, "find_unused_parameters": False}


def test_gloo_serves_the_cpu_and_nccl_cuda() -> None:
    assert distributed.backend("cpu") == "gloo"
    assert distributed.backend("cuda") == "nccl"


@pytest.mark.parametrize("value", ["two", "0", "-1", "", "²", "1" * 400])
def test_a_world_size_that_is_not_a_positive_whole_number_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", value)

    with pytest.raises(errors.ConfigError, match=f"WORLD_SIZE={value!r} is not a positive whole number"):
        distributed.world_size()


def test_several_ranks_without_torchrun_s_rendezvous_settings_are_refused_naming_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(errors.ConfigError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT is not set"):
        distributed.init("cpu")
