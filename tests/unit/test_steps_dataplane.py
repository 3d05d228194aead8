"""The data plane: atomic publish, sealed schema-versioned JSON, clear errors, on several filesystems."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import ClassVar

import fsspec
import pytest

from steps import checkpoint, dataplane, documents, errors, schemas
from tests import stepdocs


@pytest.fixture(params=["path", "file", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "path":
        return str(tmp_path / "run")
    if request.param == "file":
        return f"file://{tmp_path}/run"
    return f"memory://sharedvol-{uuid.uuid4().hex[:8]}/run"


def test_a_published_checkpoint_reads_back_verified_on_every_filesystem(root: str) -> None:
    layout = dataplane.RunLayout(root)
    stepdocs.publish_stand_ins(layout.checkpoint_dir, weights=b"w" * 7000, resume=b"r" * 9000)

    manifest = checkpoint.require_manifest(layout.checkpoint)
    assert bytes(checkpoint.read_verified(manifest, manifest.weights)) == b"w" * 7000
    assert bytes(checkpoint.read_verified(manifest, manifest.resume)) == b"r" * 9000
    fs, path = fsspec.core.url_to_fs(layout.checkpoint_dir)
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(path, detail=False)) == sorted(
        ["latest.json", manifest.weights.name, manifest.resume.name]
    )


class Probe(schemas.Document):
    """A small document for these tests."""

    SCHEMA: ClassVar[str] = "sharedvol.probe"
    VERSION: ClassVar[int] = 1
    top1: schemas.Fraction


def test_a_json_document_round_trips_sealed_on_every_filesystem(root: str) -> None:
    url = dataplane.RunLayout(root).eval_result
    documents.write_json(url, {"schema": "sharedvol.probe", "schema_version": 1, "top1": 0.5})

    assert documents.read(url, Probe) == Probe(top1=0.5)


def test_a_document_holding_nan_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    url = str(tmp_path / "eval.json")
    with pytest.raises(errors.IntegrityError, match="non-finite number"):
        documents.write_json(url, {"schema": "sharedvol.probe", "schema_version": 1, "top1": float("nan")})
    assert not (tmp_path / "eval.json").exists()


def test_the_run_layout_names_one_manifest_for_the_checkpoint() -> None:
    layout = dataplane.RunLayout("/mnt/shared/runs/r1/")
    assert layout.checkpoint == "/mnt/shared/runs/r1/checkpoints/latest.json"
    assert layout.checkpoint_dir == "/mnt/shared/runs/r1/checkpoints"
    assert layout.summary == "/mnt/shared/runs/r1/train/summary.json"
    assert layout.eval_result == "/mnt/shared/runs/r1/eval/eval_result.json"
    assert layout.metrics_dir == "/mnt/shared/runs/r1/metrics"


def test_publishing_under_a_regular_file_is_a_run_dir_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(errors.RunDirError, match="cannot write"):
        dataplane.publish_bytes(str(tmp_path / "file" / "run" / "x.json"), b"{}")


def test_reading_under_a_regular_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(errors.SchemaError, match="is not a file"):
        documents.read(str(tmp_path / "file" / "eval.json"), Probe)


def test_an_s3_run_directory_without_s3fs_names_the_package_to_install() -> None:
    with pytest.raises(errors.RunDirError, match=r"the s3:// filesystem needs a package: install it: pip install s3fs"):
        dataplane.filesystem("s3://bucket/runs/r1")


def _doc(tmp_path: Path, doc: dict | str, *, seal: bool = True) -> str:
    path = tmp_path / "doc.json"
    if isinstance(doc, dict) and seal:
        documents.write_json(str(path), doc)
    else:
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_a_truncated_json_document_is_a_schema_error(tmp_path: Path) -> None:
    url = _doc(tmp_path, '{"schema": "sharedvol.probe", "schema_version": 1, "top1": 0.9')
    with pytest.raises(errors.SchemaError, match="is not valid JSON"):
        documents.read(url, Probe)


def test_a_foreign_json_document_is_a_schema_error(tmp_path: Path) -> None:
    url = _doc(tmp_path, {"accuracy": 0.9})
    with pytest.raises(errors.SchemaError, match=r"is not a sharedvol.probe document \(schema: 'None'\)"):
        documents.read(url, Probe)


def test_an_unknown_schema_version_is_refused_naming_both_versions(tmp_path: Path) -> None:
    url = _doc(tmp_path, {"schema": "sharedvol.probe", "schema_version": 7, "top1": 0.9})
    with pytest.raises(errors.SchemaError, match="has schema_version 7; this sharedvol reads 1"):
        documents.read(url, Probe)


def test_a_field_of_the_wrong_type_is_a_schema_error_naming_the_field_and_the_rule(tmp_path: Path) -> None:
    url = _doc(tmp_path, {"schema": "sharedvol.probe", "schema_version": 1, "top1": "high"})
    with pytest.raises(errors.SchemaError, match="field top1: Input should be a valid number"):
        documents.read(url, Probe)


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace('"top1": 0.25', '"top1": 0.95'),
        lambda t: "\n".join(line for line in t.splitlines() if '"blake3"' not in line).replace("0.25,", "0.25"),
    ],
    ids=["value changed", "digest removed"],
)
def test_a_json_document_changed_after_it_was_written_is_refused(tmp_path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    url = _doc(tmp_path, {"schema": "sharedvol.probe", "schema_version": 1, "top1": 0.25})
    Path(url).write_text(edit(Path(url).read_text()))
    json.loads(Path(url).read_text())  # still valid JSON: only the digest can tell
    with pytest.raises(errors.SchemaError, match="does not match its digest"):
        documents.read(url, Probe)
