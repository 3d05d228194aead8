"""Hostile files on the shared volume: nothing read there runs code, blocks a step or allocates past its cap.

Each case is a real file on a real filesystem (FIFOs, symbolic links to devices, planted pickles, documents that
parse but cannot be true), read by the step command a user runs: one line, exit 2, no traceback.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest

from pipelines import cli
from steps import checkpoint, data, documents, errors, schemas
from tests import stepdocs

pytestmark = pytest.mark.timeout(120)  # a read that blocks fails here instead of hanging the suite


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=20, test=10)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def published(run_dir: Path) -> checkpoint.Manifest:
    """A run directory holding one published epoch (small stand-in files: the readers refuse before they load)."""
    return stepdocs.publish_stand_ins(str(run_dir / "checkpoints"))


def reseal(url: Path, change: dict[str, object]) -> None:
    """Rewrite the document at ``url`` with ``change`` merged in and a digest that matches (what an attacker can do)."""
    doc = json.loads(url.read_text())
    doc.pop("blake3")
    doc.update(change)
    documents.write_json(str(url), doc)


def test_a_cifar_batch_whose_pickle_calls_os_system_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    (tmp_path / data.MANIFEST).unlink()  # data sharedvol did not prepare: only the file's contents decide
    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as f:
        pickle.dump({"data": Planted(), "labels": [0]}, f, protocol=2)

    with pytest.raises(errors.DatasetError, match=r"data_batch_1 was refused unread: it asks for posix.system"):
        data.validate(str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["data_batch_1", "batches.meta"])
def test_a_fifo_in_place_of_a_cifar_file_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    path = tmp_path / "cifar-10-batches-py" / name
    path.unlink()
    os.mkfifo(path)

    code, line = run(capsys, "data", "prepare", str(tmp_path))

    assert code == 2
    assert line.startswith(f"sharedvol data: error: {path} is a FIFO, not a regular file; refused unread")


@pytest.mark.parametrize("part", ["manifest", "weights"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_test_resnet_refuses_a_fifo_or_a_link_to_dev_zero_in_place_of_a_checkpoint_file(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, part: str, kind: str
) -> None:
    manifest = published(tmp_path / "run")
    path = Path(manifest.url) if part == "manifest" else Path(manifest.file_url(manifest.weights))
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")

    code, line = run(capsys, "test", "--run-dir", str(tmp_path / "run"), "--data-root", str(dataset), "--device", "cpu")

    what = "a FIFO" if kind == "fifo" else "a character device"
    assert code == 2 and f"{path} is {what}, not a regular file; refused unread" in line


@pytest.mark.parametrize(
    ("size", "rule"),
    [
        (2**62, "Input should be less than or equal to 4294967296"),
        (10**12, "Input should be less than or equal to 4294967296"),
        (-1, "Input should be greater than or equal to 1"),
        (True, "Input should be a valid integer"),
        ("4000", "Input should be a valid integer"),
    ],
    ids=["2^62", "10^12", "-1", "true", "a string"],
)
def test_a_manifest_with_an_impossible_weights_size_is_one_line_naming_the_field(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, size: object, rule: str
) -> None:
    manifest = published(tmp_path / "run")
    reseal(Path(manifest.url), {"weights": {**manifest.weights.model_dump(), "size": size}})

    code, line = run(capsys, "test", "--run-dir", str(tmp_path / "run"), "--data-root", str(dataset), "--device", "cpu")

    assert code == 2 and f"{manifest.url}: field weights.size: {rule}" in line


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("document", ["manifest", "eval_result"])
def test_json_nested_two_hundred_thousand_deep_is_one_line(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, document: str
) -> None:
    run_dir = tmp_path / "run"
    manifest = published(run_dir)
    target = Path(manifest.url) if document == "manifest" else run_dir / "eval" / "eval_result.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text('{"schema": ' + deep(200_000) + "}")

    command = ["test", "--data-root", str(dataset), "--device", "cpu"] if document == "manifest" else ["metrics"]
    code, line = run(capsys, *command, "--run-dir", str(run_dir))

    assert code == 2 and f"{target} is not valid JSON (recursion limit exceeded" in line


def test_a_safetensors_header_nested_deep_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    header = deep(200_000).encode()
    blob = struct.pack("<Q", len(header)) + header
    from steps import safeload

    with pytest.raises(errors.IntegrityError, match="header is not JSON: recursion limit exceeded"):
        safeload.weights_from_buffer(bytearray(blob), "w.safetensors")


EVAL = {
    "checkpoint": "c",
    "checkpoint_blake3": "0" * 64,
    "epoch": 1,
    "dataset_root": "d",
    "dataset_source": "synthetic",
    "split": "test",
    "size": 4,
    "top1": 0.5,
    "top5": 1.0,
    "loss": 0.7,
    "class_names": ["a", "b"],
    "per_class_accuracy": {"a": 0.5, "b": 0.5},
    "confusion_matrix": [[1, 1], [1, 1]],
    "device": "cpu",
    "wall_time_s": 1.0,
}


def write_eval(run_dir: Path, **change: object) -> Path:
    url = run_dir / "eval" / "eval_result.json"
    documents.write_json(str(url), {"schema": "sharedvol.eval_result", "schema_version": 2, **EVAL, **change})
    return url


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"loss": "NaN"}, "Input should be a valid number"),
        ({"size": -3}, "field size: Input should be greater than or equal to 1"),
        ({"top1": 0.75}, "top1 0.75 is not the matrix's 2/4 correct"),
        ({"confusion_matrix": [[1, 1], [1]]}, "confusion_matrix is not 2 x 2"),
        ({"confusion_matrix": [[1, 1], [1, 2]]}, "confusion_matrix adds up to 5, not size 4"),
        ({"confusion_matrix": 7}, "field confusion_matrix: Input should be a valid array"),
        ({"class_names": ["a", "a"]}, "class_names repeats a name"),
        ({"per_class_accuracy": [0.5, 0.5]}, "field per_class_accuracy: Input should be an object"),
        ({"top5": 0.25}, "top5 0.25 is below top1 0.5"),
        ({"meta": {}}, "field meta: Extra inputs are not permitted"),
    ],
    ids=["nan-as-text", "negative-size", "top1-lies", "ragged", "sum", "not-a-list", "dupes", "list", "top5", "extra"],
)
def test_an_eval_result_that_cannot_be_true_is_one_line_and_nothing_is_published(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: dict[str, object], rule: str
) -> None:
    url = write_eval(tmp_path, **change)

    code, line = run(capsys, "metrics", "--run-dir", str(tmp_path))

    assert code == 2 and f"{url}: " in line and rule in line
    assert not (tmp_path / "metrics").exists()


def test_nan_written_by_hand_into_an_eval_result_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = write_eval(tmp_path)
    url.write_text(url.read_text().replace('"loss": 0.7', '"loss": NaN'))

    code, line = run(capsys, "metrics", "--run-dir", str(tmp_path))

    assert code == 2 and f"{url} is not valid JSON" in line


def test_a_file_larger_than_its_documents_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    url = tmp_path / "eval_result.json"
    with open(url, "wb") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB that take no space

    with pytest.raises(errors.SchemaError, match=f"{url} is 67108864 bytes, more than the 4194304 bytes"):
        documents.read(str(url), schemas.EvalResult)


def test_a_weights_file_replaced_by_a_larger_one_is_refused_before_anything_is_allocated(tmp_path: Path) -> None:
    manifest = published(tmp_path)
    weights = Path(manifest.file_url(manifest.weights))
    weights.unlink()
    with open(weights, "wb") as f:
        f.truncate(8 << 30)  # 8 GiB, sparse: more than any checkpoint may be

    with pytest.raises(errors.IntegrityError, match="more than the 4294967296 bytes such a file may have"):
        checkpoint.read_verified(manifest, manifest.weights)


def test_a_killed_writers_foreign_temporary_files_are_removed_and_published_files_are_world_readable(
    tmp_path: Path,
) -> None:
    ckpt = tmp_path / "checkpoints"
    published(tmp_path)
    (ckpt / ".tmpab12CD").write_bytes(b"half of a checkpoint")

    removed = checkpoint.prune(str(ckpt), keep=1)

    assert removed == [".tmpab12CD"]
    modes = {p.name: p.stat().st_mode & 0o777 for p in ckpt.iterdir()}
    assert all(mode & 0o044 == 0o044 for mode in modes.values()), modes


def test_a_cifar_batch_larger_than_its_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    (tmp_path / data.MANIFEST).unlink()  # no manifest to name the size: the fixed cap applies
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    with open(batch, "r+b") as f:
        f.truncate(300 << 20)  # sparse

    with pytest.raises(errors.DatasetError, match=f"{batch} is 314572800 bytes, more than the 268435456 bytes"):
        data.validate(str(tmp_path))


def test_a_dataset_folder_that_links_to_etc_is_refused_and_nothing_is_written_there(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / data.BASE_FOLDER).symlink_to(elsewhere)
    code, line = run(capsys, "data", "synth", str(tmp_path / "vol"), "--train", "10", "--test", "10")
    assert code == 2 and "cifar-10-batches-py is a symbolic link" in line
    assert list(elsewhere.iterdir()) == []


def test_a_directory_in_place_of_the_dataset_manifest_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / data.MANIFEST).mkdir()
    code, line = run(capsys, "data", "synth", str(tmp_path), "--train", "10", "--test", "10")
    assert code == 2 and f"cannot remove {tmp_path / data.MANIFEST}: Is a directory" in line


def test_an_os_error_no_layer_expected_is_one_line_naming_the_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "x"))

    monkeypatch.setattr(data, "synthesize", refuse)
    code, line = run(capsys, "data", "synth", str(tmp_path), "--train", "10", "--test", "10")
    assert code == 2
    where = tmp_path / "x"
    assert line == f"sharedvol data: error: Is a directory ('{where}'): " + (
        "check that path (its type, its permissions, the free space), then run again"
    )
