"""What sharedvol registers in OpenMMLab's registries (imported only where mmcls is used)."""

from __future__ import annotations

from typing import ClassVar

from mmcls.datasets import CIFAR10
from mmcls.registry import DATASETS


@DATASETS.register_module(force=True)
class SharedvolCIFAR10(CIFAR10):
    """CIFAR-10 read from ``cifar-10-batches-py`` without the official per-file MD5 checks.

    mmcls checks every batch file against the official checksums, so generated data in the same
    format would be refused. sharedvol checks the official archive when it downloads it
    (:func:`steps.data.download`) and reads any data in the format here. Never downloads.
    """

    train_list: ClassVar[list[list[str | None]]] = [[f"data_batch_{i}", None] for i in range(1, 6)]
    test_list: ClassVar[list[list[str | None]]] = [["test_batch", None]]
    meta: ClassVar[dict[str, str | None]] = {"filename": "batches.meta", "key": "label_names", "md5": None}

    def __init__(self, data_prefix: str, test_mode: bool, **kwargs: object) -> None:
        kwargs["download"] = False
        super().__init__(data_prefix=data_prefix, test_mode=test_mode, **kwargs)
