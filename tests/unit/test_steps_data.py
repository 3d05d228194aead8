"""CIFAR-10 data: the synthetic set in the official format, validation, preparation."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import pickle
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from steps import cifar_download, cli, data, errors, prepare_data


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
    assert [labels[c] for c in range(10)] == manifest.train_label_counts
    assert test[b"data"].shape == (manifest.test_size, 3072)
    assert [Counter(test[b"labels"])[c] for c in range(10)] == manifest.test_label_counts
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


def unprepared(tmp_path: Path) -> None:
    """A dataset in CIFAR-10's format that sharedvol did not prepare (no manifest naming its files)."""
    data.synthesize(str(tmp_path), train=10, test=10)
    (tmp_path / data.MANIFEST).unlink()


def test_a_file_that_is_not_a_cifar_batch_is_a_dataset_error(tmp_path: Path) -> None:
    unprepared(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"PNG\x00not a pickle")
    with pytest.raises(errors.DatasetError, match="data_batch_3 is not a CIFAR-10 batch file"):
        data.validate(str(tmp_path))


def test_a_batch_of_the_wrong_shape_is_a_dataset_error(tmp_path: Path) -> None:
    unprepared(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((10, 100), dtype=np.uint8), "labels": [0] * 10}, f)
    with pytest.raises(errors.DatasetError, match=r"test_batch: its data is \(10, 100\), not N x 3072"):
        data.validate(str(tmp_path))


def test_a_batch_changed_after_the_dataset_was_prepared_is_refused(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path), train=10, test=10)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    raw = bytearray(batch.read_bytes())
    raw[-20] ^= 1  # one pixel
    batch.write_bytes(bytes(raw))
    with pytest.raises(errors.DatasetError, match="data_batch_2 is not the file the dataset's manifest names"):
        data.validate(str(tmp_path))


def test_prepare_reuses_a_prepared_dataset(tmp_path: Path) -> None:
    first = prepare_data.prepare(str(tmp_path), "synthetic:30:20")
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    stamp = batch.stat().st_mtime_ns
    again = prepare_data.prepare(str(tmp_path), "synthetic:500:100")

    assert (again.train_size, again.test_size) == (first.train_size, first.test_size) == (30, 20)
    assert batch.stat().st_mtime_ns == stamp


def test_prepare_copies_a_local_dataset(tmp_path: Path) -> None:
    data.synthesize(str(tmp_path / "src"), train=20, test=10)
    m = prepare_data.prepare(str(tmp_path / "dst"), str(tmp_path / "src"))
    assert m.source == f"local:{tmp_path / 'src'}"
    assert data.validate(str(tmp_path / "dst")).train_size == 20


@pytest.mark.parametrize(
    ("source", "message"),
    [("imagenet", "unknown data source 'imagenet'"), ("synthetic:ten:5", "is not synthetic:TRAIN:TEST")],
)
def test_a_bad_data_source_is_one_clear_error(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        prepare_data.prepare(str(tmp_path), source)


def test_a_synthetic_size_below_one_image_per_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="--train 5 is out of range"):
        data.synthesize(str(tmp_path), train=5, test=10)


def test_cfg_options_are_parsed_by_mmengines_dict_action() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=cli.CfgOptions, default={})
    args = parser.parse_args(["--cfg-options", "a.b=3", "c=[1,2]", "d=cosine", "e=True", "f=(1,)"])
    assert args.cfg_options == {"a.b": 3, "c": [1, 2], "d": "cosine", "e": True, "f": (1,)}


ARCHIVE_FILES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
    "batches.meta",
)


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server holding a CIFAR-format archive (generated) and a file that is not it."""
    import tarfile

    data.synthesize(str(tmp_path / "src"), train=20, test=10)
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "good.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (site / "wrong.tar.gz").write_bytes(b"an error page, not an archive")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "src" / "cifar-10-batches-py"
    finally:
        server.shutdown()
        thread.join()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_accepts_an_archive_whose_injected_digests_match(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, src = mirror
    site = tmp_path / "site"
    m = cifar_download.download(
        str(tmp_path / "dest"),
        f"{url}/good.tar.gz",
        archive_md5=md5(site / "good.tar.gz"),
        file_md5={name: md5(src / name) for name in ARCHIVE_FILES},
    )
    assert (m.train_size, m.test_size, m.source) == (20, 10, "official")
    assert (tmp_path / "dest" / "cifar-10-batches-py" / "test_batch").read_bytes() == (src / "test_batch").read_bytes()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["cifar-10-batches-py", "sharedvol-dataset.json"]


def test_download_refuses_an_archive_that_is_not_the_expected_one(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mirror
    with pytest.raises(errors.DatasetError, match=r"wrong\.tar\.gz did not give the expected archive \(MD5 mismatch\)"):
        cifar_download.download(str(tmp_path / "dest"), f"{url}/wrong.tar.gz")
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_refuses_a_batch_file_that_fails_its_md5(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, src = mirror
    expected = {name: md5(src / name) for name in ARCHIVE_FILES} | {"data_batch_3": "0" * 32}
    with pytest.raises(errors.DatasetError, match="data_batch_3 in the archive fails its MD5 check"):
        cifar_download.download(
            str(tmp_path / "dest"),
            f"{url}/good.tar.gz",
            archive_md5=md5(tmp_path / "site" / "good.tar.gz"),
            file_md5=expected,
        )
    assert list((tmp_path / "dest").iterdir()) == []


def test_the_default_expected_digests_are_the_official_cifar10_ones() -> None:
    assert cifar_download.OFFICIAL_TGZ_MD5 == "c58f30108f718f92721af3b95e74349a"
    assert sorted(cifar_download.OFFICIAL_MD5) == sorted(ARCHIVE_FILES)
    import inspect

    assert (
        inspect.signature(cifar_download.download).parameters["archive_md5"].default == cifar_download.OFFICIAL_TGZ_MD5
    )
