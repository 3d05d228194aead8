"""CIFAR-10 data: the synthetic set in the official format, validation, preparation."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from steps import cli, data, errors


def test_synthesized_data_reads_with_an_independent_cifar_reader_as_the_manifest_says(tmp_path: Path) -> None:
    manifest = data.synthesize(str(tmp_path), train=50, test=20, seed=3)

    folder = tmp_path / "cifar-10-batches-py"
    labels: Counter[int] = Counter()
    images = 0
    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        assert batch[b"data"].dtype == np.uint8
        assert batch[b"data"].shape == (len(batch[b"labels"]), 3072)
        assert all(isinstance(n, bytes) for n in batch[b"filenames"])
        labels.update(batch[b"labels"])
        images += batch[b"data"].shape[0]
    with open(folder / "test_batch", "rb") as f:
        test = pickle.load(f, encoding="bytes")
    with open(folder / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="bytes")

    assert images == manifest.train_size == 50
    assert tuple(labels[c] for c in range(10)) == manifest.train_label_counts
    assert test[b"data"].shape == (manifest.test_size, 3072)
    assert tuple(Counter(test[b"labels"])[c] for c in range(10)) == manifest.test_label_counts
    assert [n.decode() for n in meta[b"label_names"]] == list(manifest.classes)
    on_disk = json.loads((tmp_path / "sharedvol-dataset.json").read_text())
    assert on_disk["schema"] == "sharedvol.dataset" and on_disk["train_size"] == 50


def test_synthesized_files_load_with_string_keys_under_latin1_like_the_official_ones(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert sorted(batch) == ["batch_label", "data", "filenames", "labels"]
    assert batch["batch_label"] == "training batch 1 of 5"


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path / "a"), train=20, test=10, seed=5)
    data.synthesize(str(tmp_path / "b"), train=20, test=10, seed=5)
    for name in ("data_batch_1", "test_batch"):
        a = (tmp_path / "a" / "cifar-10-batches-py" / name).read_bytes()
        assert a == (tmp_path / "b" / "cifar-10-batches-py" / name).read_bytes()


def test_a_missing_dataset_names_the_command_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(
        errors.DatasetError, match=r"no cifar-10-batches-py directory in .*: run `sharedvol data prepare"
    ):
        data.validate(str(tmp_path))


def test_a_file_that_is_not_a_cifar_batch_is_a_dataset_error(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"PNG\x00not a pickle")
    with pytest.raises(errors.DatasetError, match="data_batch_3 is not a CIFAR-10 batch file"):
        data.validate(str(tmp_path))


def test_a_batch_of_the_wrong_shape_is_a_dataset_error(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((10, 100), dtype=np.uint8), "labels": [0] * 10}, f)
    with pytest.raises(errors.DatasetError, match="test_batch has no N x 3072 'data'"):
        data.validate(str(tmp_path))


def test_prepare_reuses_a_prepared_dataset(tmp_path: Path) -> None:
    first = data.prepare(str(tmp_path), "synthetic:30:20")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    stamp = batch.stat().st_mtime_ns
    again = data.prepare(str(tmp_path), "synthetic:500:100")

    assert (again.train_size, again.test_size) == (first.train_size, first.test_size) == (30, 20)
    assert batch.stat().st_mtime_ns == stamp


def test_prepare_copies_a_local_dataset(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path / "src"), train=20, test=10)
    m = data.prepare(str(tmp_path / "dst"), str(tmp_path / "src"))
    assert m.source == f"local:{tmp_path / 'src'}"
    assert data.validate(str(tmp_path / "dst")).train_size == 20


@pytest.mark.parametrize(
    ("source", "message"),
    [("imagenet", "unknown data source 'imagenet'"), ("synthetic:ten:5", "is not synthetic:TRAIN:TEST")],
)
def test_a_bad_data_source_is_one_clear_error(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        data.prepare(str(tmp_path), source)


def test_a_synthetic_size_below_one_image_per_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="--train 5 is out of range"):
        data.synthesize(str(tmp_path), train=5, test=10)


def test_cfg_options_parse_literals_and_keep_strings() -> None:
    assert cli.parse_cfg_options(["a.b=3", "c=[1, 2]", "d=cosine", "e=True"]) == {
        "a.b": 3,
        "c": [1, 2],
        "d": "cosine",
        "e": True,
    }
    with pytest.raises(errors.ConfigError, match="is not KEY=VALUE"):
        cli.parse_cfg_options(["epochs"])
