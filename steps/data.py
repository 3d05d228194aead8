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

import logging
import os
import pickle
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steps import errors, py2pickle

log = logging.getLogger(__name__)

BASE_FOLDER = "cifar-10-batches-py"
MANIFEST = "sharedvol-dataset.json"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
DEFAULT_SYNTHETIC = (512, 128)
MANIFEST_SCHEMA = "sharedvol.dataset"


@dataclass(frozen=True)
class DatasetManifest:
    """What a prepared dataset holds (written as ``sharedvol-dataset.json`` beside the batches).

    Attributes:
        root: the directory that holds ``cifar-10-batches-py``.
        source: ``synthetic``, ``official`` or ``local:<path>``.
        train_size: number of training images.
        test_size: number of test images.
        classes: class names, index = label.
        train_label_counts: images per class in the training split.
        test_label_counts: images per class in the test split.
        image_shape: channels, height, width.
    """

    root: str
    source: str
    train_size: int
    test_size: int
    classes: tuple[str, ...]
    train_label_counts: tuple[int, ...]
    test_label_counts: tuple[int, ...]
    image_shape: tuple[int, int, int] = (3, 32, 32)

    def to_json(self) -> dict[str, Any]:
        """The manifest as a schema-versioned JSON document."""
        return {"schema": MANIFEST_SCHEMA, "schema_version": 1, **asdict(self)}


def synthesize(dest: str, *, train: int, test: int, seed: int = 0) -> DatasetManifest:
    """Write a small learnable CIFAR-10-format dataset under ``dest/cifar-10-batches-py``.

    Each class has its own colour and stripe pattern under noise, so ResNet-18 beats chance within
    a few epochs. Training images are spread over the five ``data_batch_N`` files like the original.

    Raises:
        ConfigError: a size below 10 (one image per class) or above 60,000, or a negative seed.
    """
    import numpy as np

    if seed < 0:
        raise errors.ConfigError(f"--seed must be 0 or more, got {seed}", hint="e.g. --seed 0")
    for name, n in (("--train", train), ("--test", test)):
        if not 10 <= n <= 60000:
            raise errors.ConfigError(f"{name} {n} is out of range", hint="use between 10 and 60000 images")
    rng = np.random.default_rng(seed)
    root = Path(dest) / BASE_FOLDER
    make_dir(root)

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
    manifest = DatasetManifest(
        root=str(dest),
        source="synthetic",
        train_size=train,
        test_size=test,
        classes=CLASSES,
        train_label_counts=tuple(train_labels.count(c) for c in range(len(CLASSES))),
        test_label_counts=tuple(test_labels.count(c) for c in range(len(CLASSES))),
    )
    write_manifest(manifest)
    log.info("synthesized %d train + %d test images in %s", train, test, root)
    return manifest


# One colour per class, far enough apart to be learnable under the noise.
_PALETTE = ((200, 60, 60), (60, 200, 60), (60, 60, 200), (200, 200, 60), (200, 60, 200), (60, 200, 200),
            (230, 140, 40), (120, 60, 160), (90, 90, 90), (170, 170, 230))  # fmt: skip


def make_dir(path: Path) -> None:
    """Create ``path`` and its parents, or raise RunDirError naming it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise errors.RunDirError(f"cannot create {path}: {e.strerror}", hint="pick a writable directory") from e


def write_manifest(manifest: DatasetManifest) -> None:
    """Write ``sharedvol-dataset.json`` beside the batches (atomically)."""
    import json

    path = Path(manifest.root) / MANIFEST
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")
    except FileNotFoundError as e:
        raise errors.DatasetError(
            f"{path} is missing",
            hint=f"run `sharedvol data prepare {path.parent.parent}` or point --data-root at CIFAR-10",
        ) from e
    except (IsADirectoryError, PermissionError) as e:
        raise errors.DatasetError(
            f"{path} cannot be read as a file ({e.strerror})",
            hint="re-create the dataset with `sharedvol data prepare`",
        ) from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise errors.DatasetError(
            f"{path} is not a CIFAR-10 batch file ({type(e).__name__})",
            hint="re-create the dataset with `sharedvol data prepare`",
        ) from e
    if not isinstance(obj, dict):
        raise errors.DatasetError(f"{path} is not a CIFAR-10 batch file (no dict inside)", hint="re-create the dataset")
    return obj


def validate(root: str, *, source: str = "") -> DatasetManifest:
    """Check that ``root/cifar-10-batches-py`` is a readable CIFAR-10 dataset and describe it.

    Raises:
        DatasetError: a file is missing, unreadable, or of the wrong shape.
    """
    folder = Path(root) / BASE_FOLDER
    if not folder.is_dir():
        raise errors.DatasetError(
            f"no {BASE_FOLDER} directory in {root}",
            hint="run `sharedvol data prepare DIR --source download|synthetic` or point --data-root at its parent",
        )
    counts: dict[str, list[int]] = {}
    for split, files in (("train", TRAIN_FILES), ("test", (TEST_FILE,))):
        labels: list[int] = []
        for name in files:
            batch = _load(folder / name)
            data, batch_labels = batch.get("data"), batch.get("labels")
            if data is None or batch_labels is None or getattr(data, "ndim", 0) != 2 or data.shape[1] != 3072:
                raise errors.DatasetError(
                    f"{folder / name} has no N x 3072 'data' with 'labels'",
                    hint="it is not CIFAR-10's format; re-create the dataset with `sharedvol data prepare`",
                )
            if str(getattr(data, "dtype", "")) != "uint8":
                raise errors.DatasetError(
                    f"{folder / name} holds {data.dtype} pixels, not uint8 (0-255) like CIFAR-10",
                    hint="convert the images to uint8, or re-create the dataset with `sharedvol data prepare`",
                )
            if len(batch_labels) != data.shape[0] or any(not 0 <= int(x) < len(CLASSES) for x in batch_labels):
                raise errors.DatasetError(
                    f"{folder / name} has labels that do not match its images", hint="re-create it"
                )
            labels.extend(int(x) for x in batch_labels)
        counts[split] = labels
    meta = _load(folder / META_FILE)
    names = tuple(meta.get("label_names") or ())
    if len(names) != len(CLASSES):
        raise errors.DatasetError(f"{folder / META_FILE} does not list 10 label_names", hint="re-create the dataset")
    return DatasetManifest(
        root=str(root),
        source=source or _recorded_source(root),
        train_size=len(counts["train"]),
        test_size=len(counts["test"]),
        classes=tuple(str(n) for n in names),
        train_label_counts=tuple(counts["train"].count(c) for c in range(len(CLASSES))),
        test_label_counts=tuple(counts["test"].count(c) for c in range(len(CLASSES))),
    )


def _recorded_source(root: str) -> str:
    import json

    path = Path(root) / MANIFEST
    if path.exists():
        try:
            return str(json.loads(path.read_text()).get("source", "unknown"))
        except ValueError:
            return "unknown"
    return "unknown"


def prepare(dest: str, source: str = "synthetic") -> DatasetManifest:
    """Make CIFAR-10 available under ``dest`` once; a second call finds it and reuses it.

    Args:
        dest: the directory that will hold ``cifar-10-batches-py`` (on the shared volume: ``<mount>/data/cifar10``).
        source: ``synthetic`` (small default sizes), ``synthetic:TRAIN:TEST``, ``download`` (the official archive,
            MD5-checked), or a local directory that holds ``cifar-10-batches-py`` (copied).

    Raises:
        ConfigError: an unknown source.
        DatasetError: the download or the copied data is not CIFAR-10.
    """
    manifest_path = Path(dest) / MANIFEST
    if manifest_path.exists() and (Path(dest) / BASE_FOLDER).is_dir():
        found = validate(dest)
        log.info(
            "dataset already prepared in %s (%s, %d train / %d test)",
            dest,
            found.source,
            found.train_size,
            found.test_size,
        )
        return found
    if source == "synthetic" or source.startswith("synthetic:"):
        train, test = DEFAULT_SYNTHETIC
        if source != "synthetic":
            try:
                _, a, b = source.split(":")
                train, test = int(a), int(b)
            except ValueError as e:
                raise errors.ConfigError(
                    f"data source {source!r} is not synthetic:TRAIN:TEST", hint="e.g. synthetic:512:128"
                ) from e
        return synthesize(dest, train=train, test=test)
    if source == "download":
        from steps import cifar_download

        return cifar_download.download(dest)
    if Path(source).is_dir():
        found = validate(source, source=f"local:{source}")
        make_dir(Path(dest))
        if Path(source).resolve() != Path(dest).resolve():
            shutil.copytree(Path(source) / BASE_FOLDER, Path(dest) / BASE_FOLDER, dirs_exist_ok=True)
        manifest = DatasetManifest(**{**asdict(found), "root": str(dest)})
        write_manifest(manifest)
        return manifest
    raise errors.ConfigError(
        f"unknown data source {source!r}",
        hint="use synthetic, synthetic:TRAIN:TEST, download, or a directory holding cifar-10-batches-py",
    )
