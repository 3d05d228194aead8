"""Hostile CIFAR-10 files on the shared volume: batches that stand for more pixels than they hold, planted
temporary names under ``data synth``, and class names in ``batches.meta`` that no report can show.

Each case is a real file in ``tmp_path`` read (or written) by the command a user runs: one line, exit 2, no
traceback, nothing allocated past the file's own bytes, nothing written outside the dataset directory.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rig.paths import REPO
from steps import cifar_format, data
from tests import stepdocs
from tests.unit.test_steps_hostile_volume import run

pytestmark = pytest.mark.timeout(120)  # a write that blocks fails here instead of hanging the suite

REMAKE = "re-create the dataset with `sharedvol data prepare` (or copy CIFAR-10's official files)"
FILES = sorted([*data.TRAIN_FILES, data.TEST_FILE, data.META_FILE])


def unprepared(root: Path) -> Path:
    """A dataset in CIFAR-10's format that sharedvol did not prepare (as copied official files are); its folder."""
    data.synthesize(str(root), train=10, test=10)
    (root / data.MANIFEST).unlink()
    return root / data.BASE_FOLDER


# ---------------------------------------------------------------- batches that stand for more than they hold


def zero_stride_batch(n: int) -> bytes:
    """A batch whose ``data`` is ``numpy.ndarray((n, 3072), 'u1', <one image>, 0, (0, 1))``: n rows, one image."""
    out = bytearray(b"\x80\x02}(")  # PROTO 2, EMPTY_DICT, MARK
    out += b"X\x04\x00\x00\x00data"
    out += b"cnumpy\nndarray\n"
    out += b"(J" + struct.pack("<i", n) + b"M\x00\x0c\x86"  # shape (n, 3072)
    out += b"X\x02\x00\x00\x00u1"
    out += b"B" + struct.pack("<I", 3072) + bytes(range(256)) * 12  # the buffer: one image
    out += b"K\x00K\x00K\x01\x86tR"  # offset 0, strides (0, 1), TUPLE, REDUCE
    out += b"X\x06\x00\x00\x00labels]"
    for start in range(0, n, 1000):
        out += b"(" + b"".join(b"K" + bytes([i % 10]) for i in range(start, min(n, start + 1000))) + b"e"
    return bytes(out + b"u.")


def test_a_batch_that_calls_numpy_ndarray_with_zero_strides_is_refused_before_its_rows_are_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = unprepared(tmp_path / "source")
    (folder / "data_batch_1").write_bytes(zero_stride_batch(200_000))  # 600 MB of pixels from 0.4 MB of file

    code, line = run(capsys, "data", "prepare", str(tmp_path / "dest"), "--source", str(tmp_path / "source"))

    assert code == 2
    assert line == (
        f"sharedvol data: error: {folder / 'data_batch_1'} was refused unread: it calls numpy.ndarray itself "
        f"(numpy's own pickles rebuild an array through _reconstruct and its state): {REMAKE}"
    )
    assert not (tmp_path / "dest" / data.MANIFEST).exists()


def test_a_small_batch_of_millions_of_tiny_objects_is_refused_before_one_is_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = unprepared(tmp_path / "source")
    # 20 MB of empty dicts, a byte each: 1.9 GB of memory once unpickled (256 MiB of them would take 24 GB)
    (folder / "data_batch_1").write_bytes(b"\x80\x02]q\x00(" + b"}" * (20 << 20) + b"e.")

    code, line = run(capsys, "data", "prepare", str(tmp_path / "dest"), "--source", str(tmp_path / "source"))

    assert code == 2
    assert f"{folder / 'data_batch_1'} was refused unread: it holds more than 481000 pickle operations" in line
    assert not (tmp_path / "dest" / data.MANIFEST).exists()


def _text(x: str) -> bytes:
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def subarray_dtype_batch(images: int) -> bytes:
    """A batch whose uint8 dtype is given a 2^30-element subarray shape by its own BUILD (allow-listed globals only)."""
    u1 = b"cnumpy\ndtype\n" + _text("u1") + b"\x89\x88\x87R"
    p = b"\x80\x02}q\x00(" + _text("data")
    p += b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85c_codecs\nencode\n"
    p += _text("b") + _text("latin1") + b"\x86R\x87R"
    p += b"(K\x01K" + bytes([images]) + b"M\x00\x0c\x86" + u1
    p += b"(K\x03" + _text("|") + u1 + b"J\x00\x00\x00\x40\x85\x86NNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    p += b"\x89c_codecs\nencode\n" + _text("\0" * images * 3072) + _text("latin1") + b"\x86Rtb"
    return p + _text("labels") + b"]q\x01(" + b"K\x00" * images + b"eu."


def test_a_batch_whose_uint8_dtype_is_given_a_subarray_shape_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = unprepared(tmp_path / "source")
    (folder / "data_batch_1").write_bytes(subarray_dtype_batch(2))

    code, line = run(capsys, "data", "prepare", str(tmp_path / "dest"), "--source", str(tmp_path / "source"))

    assert code == 2 and "it holds ('u1', (1073741824,)) pixels, not uint8" in line


def python2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled like CIFAR-10's official files: numpy.core._reconstruct, dtype('u1', 0, 1), Python 2 strings."""
    out = bytearray(b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\n")
    out += b"q\x03K\x00\x85U\x01b\x87Rq\x04(K\x01" + b"J" + struct.pack("<i", images.shape[0]) + b"M\x00\x0c\x86"
    out += b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89T" + struct.pack("<i", images.nbytes) + images.tobytes() + b"tb"
    out += b"U\x06labels]" + b"(" + b"".join(b"K" + bytes([label]) for label in labels) + b"e"
    return bytes(out + b"u.")


def test_a_batch_pickled_like_the_official_python2_files_loads_with_its_pixels(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(4, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(python2_batch(images, [3, 1, 4, 1]))

    batch, _ = cifar_format.read_batch(path)

    assert batch.labels == [3, 1, 4, 1]
    assert batch.data.shape == (4, 3072) and batch.data.flags.c_contiguous and np.array_equal(batch.data, images)


def test_a_batch_whose_pixels_are_pickled_in_fortran_order_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    images = np.asfortranarray(np.zeros((10, 3072), dtype=np.uint8))
    path.write_bytes(pickle.dumps({"data": images, "labels": [0] * 10}, protocol=2))

    with pytest.raises(cifar_format.errors.DatasetError) as caught:
        cifar_format.read_batch(path)

    assert str(caught.value) == (
        f"{path}: its data is not one C-ordered block (image after image, like numpy's own pickle of CIFAR-10): "
        f"{REMAKE}"
    )


def test_a_batch_that_asks_numpy_for_another_dtype_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), dtype=np.float32), "labels": [0]}, protocol=2))

    with pytest.raises(cifar_format.errors.DatasetError) as caught:
        cifar_format.read_batch(path)

    assert str(caught.value) == (
        f"{path} was refused unread: it asks for numpy dtype 'f4', not uint8 ('u1') like CIFAR-10: {REMAKE}"
    )


# ---------------------------------------------------------------- data synth's temporary files


def synth(root: Path) -> subprocess.CompletedProcess[str]:
    """``sharedvol data synth ROOT --train 20 --test 10`` in its own process (a blocked write fails on its timeout)."""
    cmd = [sys.executable, "-m", "pipelines", "data", "synth", str(root), "--train", "20", "--test", "10"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_synth_is_not_blocked_by_a_fifo_planted_at_a_batch_files_temporary_name(tmp_path: Path) -> None:
    folder = tmp_path / data.BASE_FOLDER
    folder.mkdir()
    os.mkfifo(folder / ".data_batch_1.tmp")

    done = synth(tmp_path)

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted([".data_batch_1.tmp", *FILES])
    assert (folder / "data_batch_1").is_file() and not (folder / "data_batch_1").is_symlink()


def test_synth_leaves_the_target_of_a_symlink_planted_at_a_temporary_name_untouched(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "data" / data.BASE_FOLDER
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data outside the dataset directory\n")
    for name in FILES:
        (folder / f".{name}.tmp").symlink_to(victim)

    code, _ = run(capsys, "data", "synth", str(tmp_path / "data"), "--train", "20", "--test", "10")

    assert code == 0
    assert victim.read_text() == "precious data outside the dataset directory\n"
    assert all((folder / name).is_file() and not (folder / name).is_symlink() for name in FILES)


def test_a_stale_temporary_file_of_a_killed_synth_does_not_stop_the_next_one_which_removes_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / data.BASE_FOLDER
    folder.mkdir()
    stale = [".data_batch_1.tmp", ".data_batch_1.tmp-0badc0de", ".test_batch.tmp-0badc0de"]
    for name in stale:
        (folder / name).write_bytes(b"half a batch")

    code, _ = run(capsys, "data", "synth", str(tmp_path), "--train", "20", "--test", "10")

    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted([".data_batch_1.tmp", *FILES])  # not one of ours
    assert data.validate(str(tmp_path)).train_size == 20


# ---------------------------------------------------------------- class names in batches.meta

CLASSES = list(data.CLASSES)
META_HINT = f"batches.meta must name 10 distinct classes of 1 to 256 characters; fix it or {REMAKE}"
ODD_NAMES = {
    "empty": (["", *CLASSES[1:]], "field label_names.0: String should have at least 1 character"),
    "long": (["x" * 300, *CLASSES[1:]], "field label_names.0: String should have at most 256 characters"),
    "repeated": (["cat", *CLASSES[1:]], "field label_names: it names 'cat' twice"),
    "not text": ([7, *CLASSES[1:]], "field label_names.0: Input should be a valid string"),
}


def plant_meta(folder: Path, names: list[object]) -> Path:
    meta = folder / data.META_FILE
    meta.write_bytes(pickle.dumps({"label_names": names, "num_cases_per_batch": 2, "num_vis": 3072}, protocol=2))
    return meta


@pytest.mark.parametrize("case", ODD_NAMES)
def test_batches_meta_with_odd_class_names_is_one_line_naming_it_when_data_is_prepared(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    names, rule = ODD_NAMES[case]
    meta = plant_meta(unprepared(tmp_path / "source"), names)

    code, line = run(capsys, "data", "prepare", str(tmp_path / "dest"), "--source", str(tmp_path / "source"))

    assert (code, line) == (2, f"sharedvol data: error: {meta}: {rule}: {META_HINT}")


@pytest.mark.parametrize("command", ["train", "test"])
def test_batches_meta_that_repeats_a_class_name_stops_train_and_test_before_they_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    meta = plant_meta(unprepared(tmp_path / "data"), ["cat", *CLASSES[1:]])
    if command == "test":
        stepdocs.publish_stand_ins(str(tmp_path / "run" / "checkpoints"))  # test reads the checkpoint manifest first
    extra = ["--epochs", "1"] if command == "train" else []

    code, line = run(
        capsys, command, "--run-dir", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"), "--device", "cpu",
        *extra,
    )  # fmt: skip

    assert (code, line) == (
        2,
        f"sharedvol {command}: error: {meta}: field label_names: it names 'cat' twice: {META_HINT}",
    )


@pytest.mark.parametrize("source", ["synthetic", "synthetic:20:10"])
def test_prepare_never_writes_over_cifar_files_it_did_not_prepare_and_says_how_to_use_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str
) -> None:
    folder = unprepared(tmp_path)  # CIFAR-10 unpacked by hand: the files, no manifest
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    code, line = run(capsys, "data", "prepare", str(tmp_path), "--source", source)

    assert code == 2 and f"{folder} holds data_batch_1" in line and "refused to write over them" in line
    assert f"to use them: sharedvol data prepare {tmp_path} --source {tmp_path}" in line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert run(capsys, "data", "prepare", str(tmp_path), "--source", str(tmp_path))[0] == 0  # the hint works


def test_prepare_writes_over_the_files_of_a_killed_prepare(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = unprepared(tmp_path)
    data.begin(str(tmp_path))  # a prepare killed before its manifest, half-way through a file
    (folder / "data_batch_1").write_bytes(b"half")

    code, _ = run(capsys, "data", "prepare", str(tmp_path), "--source", "synthetic:20:10")

    assert code == 0 and data.validate(str(tmp_path)).train_size == 20
    assert not (tmp_path / data.PREPARING).exists()
