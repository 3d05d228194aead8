"""prepare-data: make CIFAR-10 available in a directory once (generated, downloaded or copied); later calls reuse it."""

from __future__ import annotations

import logging
from pathlib import Path

from steps import cifar_download, cifar_format, data, dataplane, errors, params, schemas, volread

log = logging.getLogger(__name__)


def prepare(dest: str, source: str = "synthetic") -> schemas.DatasetManifest:
    """Make CIFAR-10 available under ``dest`` once; a second call finds it and reuses it.

    Args:
        dest: the directory that will hold ``cifar-10-batches-py`` (on the shared volume: ``<mount>/data/cifar10``).
        source: ``synthetic`` (small default sizes), ``synthetic:TRAIN:TEST``, ``download`` (the official archive,
            MD5-checked), or a local directory that holds ``cifar-10-batches-py`` (its seven files are copied, each
            read with the bounded reader).

    Raises:
        ConfigError: an unknown source.
        DatasetError: the download or the copied data is not CIFAR-10, or the prepared data was changed since.
    """
    manifest_path = Path(dest) / data.MANIFEST
    if manifest_path.exists() and (Path(dest) / data.BASE_FOLDER).is_dir():
        found = data.validate(dest)
        log.info(
            "dataset already prepared in %s (%s, %d train / %d test)",
            dest,
            found.source,
            found.train_size,
            found.test_size,
        )
        return found
    reuse = Path(source).is_dir() and Path(source).resolve() == Path(dest).resolve()
    foreign = [] if reuse else data.foreign_files(dest)
    if foreign:
        folder = Path(dest) / data.BASE_FOLDER
        raise errors.DatasetError(
            f"{folder} holds {', '.join(foreign)} that sharedvol did not prepare (no {data.MANIFEST}); "
            "refused to write over them",
            hint=f"to use them: sharedvol data prepare {dest} --source {dest}; to replace them, move {folder} away",
        )
    if source == "synthetic" or source.startswith("synthetic:"):
        train, test = params.synthetic_sizes(source) or data.DEFAULT_SYNTHETIC
        return data.synthesize(dest, train=train, test=test)
    if source == "download":
        return cifar_download.download(dest)
    if Path(source).is_dir():
        return _copy(source, dest)
    raise errors.ConfigError(
        f"unknown data source {source!r}",
        hint="use synthetic, synthetic:TRAIN:TEST, download, or a directory holding cifar-10-batches-py",
    )


def _copy(source: str, dest: str) -> schemas.DatasetManifest:
    """Copy the dataset files of ``source`` to ``dest`` (only those seven, each bounded), then describe the copy."""
    found = data.validate(source, source=f"local:{source}")
    if Path(source).resolve() != Path(dest).resolve():
        folder = Path(dest) / data.BASE_FOLDER
        data.begin(dest)
        data.make_dir(folder)
        dataplane.remove_temporaries(str(folder))  # a killed copy's files
        for name, ref in found.files.items():
            raw, _ = cifar_format.read_file(Path(source) / data.BASE_FOLDER / name, ref, cap=volread.BATCH_CAP)
            dataplane.publish_bytes(str(folder / name), raw)
    manifest = data.validate(dest, source=f"local:{source}")
    data.write_manifest(manifest)
    return manifest
