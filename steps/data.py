"""CIFAR-10 in its official on-disk format (``cifar-10-batches-py``): download, synthesize, validate.

The real path downloads the official archive and checks its MD5 and every batch file's MD5
(:mod:`steps.cifar_download`). For
machines without internet and for tests, :func:`synthesize` writes a small *learnable* dataset in
exactly the official format (Python-2-style pickles of dicts with ``batch_label``, ``labels``,
``data`` (N x 3072 uint8, the R plane, then G, then B) and ``filenames``; ``batches.meta``), plus a
manifest. Training reads either through a dataset class without the official checksums
(:mod:`steps.mmcls_ext`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pydantic

from steps import cifar_format, dataplane, documents, errors, pins, py2pickle, schemas

log = logging.getLogger(__name__)

BASE_FOLDER = "cifar-10-batches-py"
MANIFEST = "sharedvol-dataset.json"
PREPARING = ".sharedvol-dataset.preparing"  # beside the manifest while sharedvol writes the files (see begin)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
DEFAULT_SYNTHETIC = (512, 128)


def synthesize(dest: str, *, train: int, test: int, seed: int = 0) -> schemas.DatasetManifest:
    """Write a small learnable CIFAR-10-format dataset under ``dest/cifar-10-batches-py``.

    Each class has its own colour and stripe pattern under noise, so ResNet-18 beats chance within
    a few epochs. Training images are spread over the five ``data_batch_N`` files like the original.

    Raises:
        ConfigError: a size below 10 (one image per class) or above 60,000, or a negative seed.
    """
    if seed < 0:
        raise errors.ConfigError(f"--seed must be 0 or more, got {seed}", hint="e.g. --seed 0")
    for name, n in (("--train", train), ("--test", test)):
        if not 10 <= n <= 60000:
            raise errors.ConfigError(f"{name} {n} is out of range", hint="use between 10 and 60000 images")
    rng = np.random.default_rng(seed)
    root = Path(dest) / BASE_FOLDER
    begin(dest)
    make_dir(root)
    dataplane.remove_temporaries(str(root))  # a killed writer's batches
    stale = Path(dest) / MANIFEST  # it would name the files about to be replaced
    try:
        stale.unlink(missing_ok=True)
    except OSError as e:
        raise errors.RunDirError(
            f"cannot remove {stale}: {e.strerror}", hint="remove it (it should be a file sharedvol wrote)"
        ) from e

    def images(n: int, split: str) -> tuple[Any, list[int], list[bytes]]:
        labels = np.arange(n) % len(CLASSES)
        rng.shuffle(labels)
        data = np.empty((n, 3, 32, 32), dtype=np.uint8)
        yy, xx = np.mgrid[0:32, 0:32]
        for i, label in enumerate(labels):
            hue = rng.normal(0, 12, size=3) + _PALETTE[label]
            period = 4 + label % 5
            stripes = ((xx if label < 5 else yy) // (period // 2 or 1)) % 2
            img = hue[:, None, None] + 40 * stripes[None] + rng.normal(0, 18, size=(3, 32, 32))
            data[i] = np.clip(img, 0, 255).astype(np.uint8)
        names = [f"{split}_{CLASSES[label]}_{i:05d}.png".encode() for i, label in enumerate(labels)]
        return data.reshape(n, 3072), [int(x) for x in labels], names

    train_data, train_labels, train_names = images(train, "train")
    bounds = np.linspace(0, train, len(TRAIN_FILES) + 1).astype(int)
    for k, fname in enumerate(TRAIN_FILES):
        lo, hi = bounds[k], bounds[k + 1]
        py2pickle.dump(
            root / fname,
            {
                b"batch_label": f"training batch {k + 1} of 5".encode(),
                b"labels": train_labels[lo:hi],
                b"data": train_data[lo:hi],
                b"filenames": train_names[lo:hi],
            },
        )
    test_data, test_labels, test_names = images(test, "test")
    py2pickle.dump(
        root / TEST_FILE,
        {b"batch_label": b"testing batch 1 of 1", b"labels": test_labels, b"data": test_data, b"filenames": test_names},
    )
    py2pickle.dump(
        root / META_FILE,
        {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": int(bounds[1]), b"num_vis": 3072},
    )
    manifest = validate(dest, source="synthetic")
    write_manifest(manifest)
    log.info("synthesized %d train + %d test images in %s", train, test, root)
    return manifest


# One colour per class, far enough apart to be learnable under the noise.
_PALETTE = ((200, 60, 60), (60, 200, 60), (60, 60, 200), (200, 200, 60), (200, 60, 200), (60, 200, 200),
            (230, 140, 40), (120, 60, 160), (90, 90, 90), (170, 170, 230))  # fmt: skip


def make_dir(path: Path) -> None:
    """Create ``path`` and its parents, or raise RunDirError naming it.

    ``path`` itself may not be a symbolic link: the dataset's files would be written wherever it points. It is
    pinned (:mod:`steps.pins`): swapped for a link or another folder later, the next write there is refused.
    """
    refuse_link(path)
    ensure_dir(path)
    pins.pin(str(path))


def ensure_dir(path: Path) -> None:
    """Create ``path`` and its parents (a link the caller chose included), or raise RunDirError naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise errors.RunDirError(f"cannot create {path}: {e.strerror}", hint="pick a writable directory") from e


def refuse_link(path: Path) -> None:
    """Raise RunDirError when ``path`` is a symbolic link (sharedvol writes only into directories of its own)."""
    if path.is_symlink():
        raise errors.RunDirError(
            f"{path} is a symbolic link (to {os.readlink(path)[:200]}); refused: the dataset's files would be "
            "written where it points",
            hint="remove the link, then run again",
        )


def write_manifest(manifest: schemas.DatasetManifest) -> None:
    """Write ``sharedvol-dataset.json`` beside the batches (atomically, sealed with its digest): a prepare's end."""
    documents.write(str(Path(manifest.root) / MANIFEST), manifest)
    with contextlib.suppress(FileNotFoundError):
        (Path(manifest.root) / PREPARING).unlink()


def begin(dest: str) -> None:
    """Mark ``dest`` as being prepared by sharedvol until :func:`write_manifest`.

    A later prepare may then overwrite the files a killed one left; files there without the mark and without a
    manifest are someone else's (CIFAR-10 unpacked by hand), which :func:`foreign_files` names.

    Raises:
        RunDirError: the mark cannot be written.
    """
    ensure_dir(Path(dest))  # ``dest`` is the caller's: it may be a link it chose
    mark = Path(dest) / PREPARING
    try:
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        os.close(fd)
    except OSError as e:
        raise errors.RunDirError(f"cannot write {mark}: {e.strerror}", hint="pick a writable directory") from e
    # (O_NONBLOCK: a FIFO planted at the mark's name is opened without waiting, and closed)


def foreign_files(dest: str) -> list[str]:
    """The dataset files under ``dest`` that no sharedvol prepare wrote or is writing (no manifest, no mark)."""
    if (Path(dest) / MANIFEST).exists() or os.path.lexists(Path(dest) / PREPARING):
        return []
    folder = Path(dest) / BASE_FOLDER
    return [name for name in (*TRAIN_FILES, TEST_FILE, META_FILE) if os.path.lexists(folder / name)]


def read_manifest(root: str) -> schemas.DatasetManifest | None:
    """The ``sharedvol-dataset.json`` of ``root``, or None when there is none (data not prepared by sharedvol).

    Raises:
        DatasetError: it is there but damaged, foreign or breaks its schema.
    """
    path = Path(root) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return documents.read(str(path), schemas.DatasetManifest)
    except errors.SchemaError as e:
        raise errors.DatasetError(e.message, hint="delete it and run `sharedvol data prepare` again") from e


def validate(root: str, *, source: str = "") -> schemas.DatasetManifest:
    """Check that ``root/cifar-10-batches-py`` is a readable CIFAR-10 dataset and describe it.

    Every file is read once with the bounded reader and the restricted unpickler (:mod:`steps.cifar_format`); where
    ``root`` has a dataset manifest, each file must be the size and digest it names.

    Raises:
        DatasetError: a file is missing, unreadable, refused, of the wrong shape, or not what the manifest names.
    """
    folder = Path(root) / BASE_FOLDER
    if not folder.is_dir():
        raise errors.DatasetError(
            f"no {BASE_FOLDER} directory in {root}",
            hint="run `sharedvol data prepare DIR --source download|synthetic` or point --data-root at its parent",
        )
    recorded = read_manifest(root)
    files: dict[str, schemas.DataFile] = {}
    counts: dict[str, list[int]] = {}
    for split, names in (("train", TRAIN_FILES), ("test", (TEST_FILE,))):
        labels: list[int] = []
        for name in names:
            batch, files[name] = cifar_format.read_batch(folder / name, recorded.files.get(name) if recorded else None)
            labels.extend(batch.labels)
        counts[split] = labels
    meta, files[META_FILE] = cifar_format.read_meta(
        folder / META_FILE, recorded.files.get(META_FILE) if recorded else None
    )
    for split in ("train", "test"):
        if not counts[split]:
            raise errors.DatasetError(f"the {split} split in {folder} holds no image", hint="re-create the dataset")
    training = blake3.blake3()
    for name in (*TRAIN_FILES, META_FILE):
        training.update(f"{name}:{files[name].blake3}\n".encode())
    try:
        return schemas.DatasetManifest(
            root=str(root),
            source=source or (recorded.source if recorded else "unknown"),
            train_size=len(counts["train"]),
            test_size=len(counts["test"]),
            classes=list(meta.label_names),
            train_label_counts=[counts["train"].count(c) for c in range(len(CLASSES))],
            test_label_counts=[counts["test"].count(c) for c in range(len(CLASSES))],
            files=files,
            dataset_blake3=training.hexdigest(),
        )
    except pydantic.ValidationError as e:  # the files passed their own checks: say which rule the whole breaks
        raise errors.DatasetError(schemas.error(str(folder), e).message, hint="re-create the dataset") from e
