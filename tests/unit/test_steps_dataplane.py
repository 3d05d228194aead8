"""The data plane: atomic publish with digests, verified reads, schema-versioned JSON, on several filesystems."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec
import pytest

from steps import dataplane, errors

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["path", "file", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "path":
        return str(tmp_path / "run")
    if request.param == "file":
        return f"file://{tmp_path}/run"
    return f"memory://sharedvol-{uuid.uuid4().hex[:8]}/run"


def test_a_published_file_reads_back_verified_on_every_filesystem(root: str) -> None:
    layout = dataplane.RunLayout(root)
    published = dataplane.publish_bytes(layout.checkpoint, b"weights" * 1000)

    assert dataplane.read_verified(layout.checkpoint) == b"weights" * 1000
    assert published.size == 7000
    assert dataplane.published_digest(layout.checkpoint) == published.sha256
    fs, path = fsspec.core.url_to_fs(layout.path("checkpoints"))
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(path, detail=False)) == ["latest.pth", "latest.pth.sha256"]


def test_a_changed_file_is_refused_with_its_name(root: str) -> None:
    layout = dataplane.RunLayout(root)
    dataplane.publish_bytes(layout.checkpoint, b"good bytes")
    with fsspec.open(layout.checkpoint, "wb") as f:
        f.write(b"evil bytes")

    with pytest.raises(errors.IntegrityError, match=r"latest\.pth does not match its digest"):
        dataplane.read_verified(layout.checkpoint)


def test_a_file_without_a_digest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latest.pth").write_bytes(b"x")
    with pytest.raises(errors.IntegrityError, match="has no digest file"):
        dataplane.read_verified(str(tmp_path / "latest.pth"))


def test_the_run_layout_matches_the_design() -> None:
    layout = dataplane.RunLayout("/mnt/shared/runs/r1/")
    assert layout.checkpoint == "/mnt/shared/runs/r1/checkpoints/latest.pth"
    assert layout.checkpoint_digest == "/mnt/shared/runs/r1/checkpoints/latest.pth.sha256"
    assert layout.summary == "/mnt/shared/runs/r1/train/summary.json"
    assert layout.eval_result == "/mnt/shared/runs/r1/eval/eval_result.json"
    assert layout.metrics_dir == "/mnt/shared/runs/r1/metrics"


def test_publishing_under_a_regular_file_is_a_run_dir_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(errors.RunDirError, match="cannot write"):
        dataplane.publish_bytes(str(tmp_path / "file" / "run" / "x.json"), b"{}")


WRITER = """
import sys, time
from steps import dataplane
def slow(f):
    for i in range(10_000):
        f.write(b"n" * 65536)
        f.flush()
        if i == 2:
            print("writing", flush=True)
        time.sleep(0.01)
dataplane.publish(sys.argv[1], slow)
"""


def test_a_writer_killed_mid_write_leaves_the_previous_file_and_no_half_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "latest.pth"
    old = dataplane.publish_bytes(str(target), b"previous checkpoint")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "writing"  # the writer is mid-file now
    time.sleep(0.05)  # let a few more chunks land
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    assert target.read_bytes() == b"previous checkpoint"
    assert dataplane.read_verified(str(target)) == b"previous checkpoint"
    assert dataplane.published_digest(str(target)) == old.sha256
    leftovers = sorted(p.name for p in target.parent.iterdir())
    assert leftovers[:2] == ["latest.pth", "latest.pth.sha256"] or leftovers[-2:] == ["latest.pth", "latest.pth.sha256"]
    assert all(
        name.startswith(".latest.pth.tmp-") for name in leftovers if name not in ("latest.pth", "latest.pth.sha256")
    )
    assert any(name.startswith(".latest.pth.tmp-") for name in leftovers), (
        "the killed writer should have left its temp file"
    )


def _doc(tmp_path: Path, content: str) -> str:
    path = tmp_path / "doc.json"
    path.write_text(content)
    return str(path)


REQUIRED = {"top1": float}


def test_a_truncated_json_document_is_a_schema_error(tmp_path: Path) -> None:
    url = _doc(tmp_path, '{"schema": "sharedvol.eval_result", "schema_version": 1, "top1": 0.9')
    with pytest.raises(errors.SchemaError, match="is not valid JSON"):
        dataplane.read_json(url, schema="sharedvol.eval_result", versions=(1,), required=REQUIRED)


def test_a_foreign_json_document_is_a_schema_error(tmp_path: Path) -> None:
    url = _doc(tmp_path, json.dumps({"accuracy": 0.9}))
    with pytest.raises(errors.SchemaError, match=r"is not a sharedvol.eval_result document \(schema: None\)"):
        dataplane.read_json(url, schema="sharedvol.eval_result", versions=(1,), required=REQUIRED)


def test_an_unknown_schema_version_is_refused_naming_both_versions(tmp_path: Path) -> None:
    url = _doc(tmp_path, json.dumps({"schema": "sharedvol.eval_result", "schema_version": 7, "top1": 0.9}))
    with pytest.raises(errors.SchemaError, match="has schema_version 7; this sharedvol reads 1"):
        dataplane.read_json(url, schema="sharedvol.eval_result", versions=(1,), required=REQUIRED)


def test_a_missing_field_is_a_schema_error(tmp_path: Path) -> None:
    url = _doc(tmp_path, json.dumps({"schema": "sharedvol.eval_result", "schema_version": 1, "top1": "high"}))
    with pytest.raises(errors.SchemaError, match="lacks field 'top1'"):
        dataplane.read_json(url, schema="sharedvol.eval_result", versions=(1,), required=REQUIRED)
