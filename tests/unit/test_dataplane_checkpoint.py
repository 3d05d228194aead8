"""The checkpoint handoff: content-addressed files behind one manifest rename, verified reads, pruning, kills."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rig.paths import REPO
from steps import background, checkpoint, dataplane, documents, errors
from tests.stepdocs import SETTINGS
from tests.unit.test_steps_dataplane import Probe


def publish(ckpt_dir: Path, epoch: int, *, keep: int = 1, later: bool = False) -> checkpoint.Manifest:
    return checkpoint.publish(
        str(ckpt_dir),
        epoch=epoch,
        weights=f"weights of epoch {epoch}".encode() * 500,
        resume=f"state of epoch {epoch}".encode() * 900,
        loss_per_epoch=[1.0 / (e + 1) for e in range(epoch)],
        keep=keep,
        settings=SETTINGS,
        prune_later=later,
    )


def read_back(ckpt_dir: Path) -> tuple[int, bytes, bytes]:
    manifest = checkpoint.require_manifest(str(ckpt_dir / "latest.json"))
    weights = bytes(checkpoint.read_verified(manifest, manifest.weights))
    resume = bytes(checkpoint.read_verified(manifest, manifest.resume))
    return manifest.epoch, weights, resume


def test_a_published_epoch_reads_back_through_its_manifest(tmp_path: Path) -> None:
    manifest = publish(tmp_path, 3)

    assert read_back(tmp_path) == (3, b"weights of epoch 3" * 500, b"state of epoch 3" * 900)
    assert manifest.weights.name.startswith("epoch-0003-") and manifest.weights.name.endswith(".safetensors")
    assert manifest.resume.name.startswith("epoch-0003-") and manifest.resume.name.endswith(".resume.safetensors")
    assert manifest.weights.size == len(b"weights of epoch 3") * 500
    on_disk = json.loads((tmp_path / "latest.json").read_text())
    assert on_disk["schema"] == "sharedvol.checkpoint" and on_disk["epoch"] == 3
    assert on_disk["loss_per_epoch"] == [1.0, 0.5, 1.0 / 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["latest.json", manifest.weights.name, manifest.resume.name]
    )


def test_the_file_names_are_content_addresses(tmp_path: Path) -> None:
    manifest = publish(tmp_path, 1)
    import blake3

    data = (tmp_path / manifest.weights.name).read_bytes()
    assert manifest.weights.blake3 == blake3.blake3(data).hexdigest()
    assert manifest.weights.name == f"epoch-0001-{manifest.weights.blake3[:16]}.safetensors"


def test_a_changed_file_is_refused_before_anything_is_loaded(tmp_path: Path) -> None:
    manifest = publish(tmp_path, 1)
    target = tmp_path / manifest.resume.name
    data = bytearray(target.read_bytes())
    data[100] ^= 1
    target.write_bytes(bytes(data))

    with pytest.raises(errors.IntegrityError, match=r"\.resume\.safetensors does not match its digest"):
        read_back(tmp_path)


@pytest.mark.parametrize("change", [b"", b"x"], ids=["truncated", "grown"])
def test_a_file_of_another_size_is_refused(tmp_path: Path, change: bytes) -> None:
    manifest = publish(tmp_path, 1)
    target = tmp_path / manifest.weights.name
    data = target.read_bytes()
    target.write_bytes(data[:-1] if not change else data + change)

    with pytest.raises(errors.IntegrityError, match="is not the size its manifest says"):
        read_back(tmp_path)


def test_a_publish_waits_for_the_previous_publishs_pruning_before_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, seen = threading.Event(), []
    real_prune = checkpoint.prune

    def slow_prune(dir_url: str, *, keep: int) -> list[str]:
        release.wait(timeout=30)
        return real_prune(dir_url, keep=keep)

    monkeypatch.setattr(checkpoint, "prune", slow_prune)
    publish(tmp_path, 1, later=True)  # its pruning is held back
    second = threading.Thread(target=lambda: seen.append(publish(tmp_path, 2, later=True)))
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive() and not list(tmp_path.glob("*epoch-0002*"))  # still waiting, nothing written
    release.set()
    second.join(timeout=30)
    background.wait()

    assert seen[0].epoch == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["latest.json", seen[0].weights.name, seen[0].resume.name]
    )


def test_an_edited_manifest_is_refused(tmp_path: Path) -> None:
    publish(tmp_path, 2)
    text = (tmp_path / "latest.json").read_text()
    (tmp_path / "latest.json").write_text(text.replace('"epoch": 2', '"epoch": 7'))

    with pytest.raises(errors.SchemaError, match=r"latest\.json does not match its digest"):
        checkpoint.read_manifest(str(tmp_path / "latest.json"))


def test_nothing_published_says_to_train_first(tmp_path: Path) -> None:
    assert checkpoint.read_manifest(str(tmp_path / "latest.json")) is None
    with pytest.raises(errors.IntegrityError, match=r"no checkpoint was published: .* run train-resnet"):
        checkpoint.require_manifest(str(tmp_path / "latest.json"))


@pytest.mark.parametrize("later", [False, True], ids=["pruned at once", "pruned on a thread"])
@pytest.mark.parametrize("keep", [1, 2, 3])
def test_at_most_keep_epochs_stay_on_the_volume(tmp_path: Path, keep: int, later: bool) -> None:
    for epoch in range(1, 6):
        publish(tmp_path, epoch, keep=keep, later=later)
    background.wait()  # what training does when it ends

    epochs = sorted({int(p.name.split("-")[1]) for p in tmp_path.iterdir() if p.name.startswith("epoch-")})
    assert epochs == list(range(6 - keep, 6))
    assert len(list(tmp_path.iterdir())) == 2 * keep + 1


def test_files_left_by_a_killed_writer_are_removed_at_the_next_start(tmp_path: Path) -> None:
    publish(tmp_path, 1)
    (tmp_path / ".epoch-0002.safetensors.tmp-1a2b3c4d").write_bytes(b"half")
    (tmp_path / "epoch-0002-0123456789abcdef.resume.pth").write_bytes(b"never committed")
    (tmp_path / "notes.txt").write_text("not ours")

    removed = checkpoint.prune(str(tmp_path), keep=1)

    assert sorted(removed) == [".epoch-0002.safetensors.tmp-1a2b3c4d", "epoch-0002-0123456789abcdef.resume.pth"]
    assert read_back(tmp_path)[0] == 1
    assert (tmp_path / "notes.txt").exists()


def test_a_damaged_manifest_makes_prune_delete_nothing_it_might_name(tmp_path: Path) -> None:
    manifest = publish(tmp_path, 1)
    (tmp_path / "latest.json").write_text("{")
    checkpoint.prune(str(tmp_path), keep=1)
    assert (tmp_path / manifest.weights.name).exists() and (tmp_path / manifest.resume.name).exists()


PUBLISH_EPOCH_2 = """
import sys
from steps import checkpoint
from tests.stepdocs import SETTINGS
d = sys.argv[1]
checkpoint.prune(d, keep=1)
checkpoint.publish(d, epoch=2, weights=b"weights of epoch 2" * 500, resume=b"state of epoch 2" * 900,
                   loss_per_epoch=[1.0, 0.5], keep=1, settings=SETTINGS)
"""


def run_killed(ckpt_dir: Path, at: int, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "KILLPOINT_ROOT": str(ckpt_dir), "KILLPOINT_AT": str(at)}
    env["KILLPOINT_MODE"] = mode
    cmd = [sys.executable, "-m", "tests.ml.killpoints", "-c", PUBLISH_EPOCH_2, str(ckpt_dir)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("mode", ["kill", "torn"])
def test_a_publish_killed_at_any_write_rename_or_removal_leaves_a_whole_epoch_and_a_rerun_completes(
    tmp_path: Path, mode: str
) -> None:
    points = 0
    events: set[str] = set()
    for at in range(1, 40):
        ckpt_dir = tmp_path / f"{mode}-{at}"
        publish(ckpt_dir, 1)
        proc = run_killed(ckpt_dir, at, mode)
        if proc.returncode == 0:
            assert proc.stderr.strip().splitlines()[-1] == f"killpoints: {points}"
            break
        assert proc.returncode == 137, proc.stderr
        points = at
        events.add(proc.stderr.split()[2])
        epoch, weights, resume = read_back(ckpt_dir)  # whatever the kill, one whole epoch is readable
        assert (weights, resume) == (
            f"weights of epoch {epoch}".encode() * 500,
            f"state of epoch {epoch}".encode() * 900,
        )

        checkpoint.prune(str(ckpt_dir), keep=1)  # what the rerun does first
        publish(ckpt_dir, 2)
        assert read_back(ckpt_dir)[0] == 2
        assert len(list(ckpt_dir.iterdir())) == 3, sorted(p.name for p in ckpt_dir.iterdir())
    else:
        pytest.fail("the publish never ran to its end")
    assert events == {"open", "os.rename", "os.remove"}
    assert points >= 8  # three files written and renamed, two old files removed


def test_dataplane_publish_killed_mid_file_leaves_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "eval" / "eval_result.json"
    documents.write_json(str(target), {"schema": "sharedvol.probe", "schema_version": 1, "top1": 0.25})
    doc = {"schema": "sharedvol.probe", "schema_version": 1, "top1": 0.5}
    code = f"from steps import documents\ndocuments.write_json({str(target)!r}, {doc!r})"
    for at in (1, 2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "KILLPOINT_ROOT": str(tmp_path), "KILLPOINT_AT": str(at)}
        env["KILLPOINT_MODE"] = "torn"
        cmd = [sys.executable, "-m", "tests.ml.killpoints", "-c", code]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 137
        assert documents.read(str(target), Probe).top1 == 0.25
    assert dataplane.remove_temporaries(str(target.parent))
    assert [p.name for p in target.parent.iterdir()] == ["eval_result.json"]
