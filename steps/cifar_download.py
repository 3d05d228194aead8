"""The official CIFAR-10 archive: downloaded with mmcls's downloader, MD5-checked (archive and every batch file).

The expected digests can be injected (a mirror, a test server); the defaults are the official ones.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from steps import errors, schemas
from steps.data import BASE_FOLDER, begin, ensure_dir, refuse_link, validate, write_manifest

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


def download(
    dest: str,
    url: str = OFFICIAL_URL,
    *,
    archive_md5: str = OFFICIAL_TGZ_MD5,
    file_md5: dict[str, str] | None = None,
) -> schemas.DatasetManifest:
    """Download the archive with mmcls's downloader, check its MD5 and every batch file's MD5, unpack it under ``dest``.

    Args:
        dest: the directory that will hold ``cifar-10-batches-py``.
        url: where the archive is (default: the official one).
        archive_md5: the archive's expected MD5 (default: the official one).
        file_md5: each batch file's expected MD5 (default: the official ones).

    Raises:
        DatasetError: the download failed or a checksum does not match; ``dest`` is left as it was.
    """
    from mmcls.datasets import utils as mmcls_utils

    expected = OFFICIAL_MD5 if file_md5 is None else file_md5
    ensure_dir(Path(dest))
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        log.info("downloading %s", url)
        try:
            mmcls_utils.download_url(url, tmp, filename="cifar-10-python.tar.gz", md5=archive_md5)
        except RuntimeError as e:  # mmcls's word for a checksum mismatch
            raise errors.DatasetError(
                f"{url} did not give the expected archive (MD5 mismatch)", hint="retry, or check the mirror"
            ) from e
        except OSError as e:
            raise errors.DatasetError(
                f"cannot download CIFAR-10 from {url}: {e}",
                hint="check the network, or fetch the archive elsewhere and use --source DIR",
            ) from e
        # tarfile's "data" filter, not mmcls's extract_archive: no member may land outside the directory.
        try:
            with tarfile.open(Path(tmp) / "cifar-10-python.tar.gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise errors.DatasetError(f"{url} is not a readable archive ({e})", hint="retry the download") from e
        for name, md5 in expected.items():
            if not mmcls_utils.check_integrity(str(Path(tmp) / BASE_FOLDER / name), md5):
                raise errors.DatasetError(f"{name} in the archive fails its MD5 check", hint="retry the download")
        target = Path(dest) / BASE_FOLDER
        refuse_link(target)
        begin(dest)
        if target.exists():
            shutil.rmtree(target)
        os.replace(Path(tmp) / BASE_FOLDER, target)
    manifest = validate(dest, source="official")
    write_manifest(manifest)
    return manifest
