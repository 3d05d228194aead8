"""What sharedvol registers in OpenMMLab's registries: a dataset and a metric (imported only where mmcls is used)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from mmcls.datasets import CIFAR10
from mmcls.registry import DATASETS, METRICS
from mmengine.evaluator import BaseMetric

from steps import (
    augment,  # noqa: F401  (registers SharedvolCifarPreprocessor)
    cifar_format,
    schemas,
)


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

    def __init__(
        self, data_prefix: str, test_mode: bool, expected: dict[str, dict[str, Any]] | None = None, **kwargs: object
    ) -> None:
        kwargs["download"] = False
        self.expected = {k: schemas.DataFile.model_validate(v) for k, v in (expected or {}).items()}
        super().__init__(data_prefix=data_prefix, test_mode=test_mode, **kwargs)

    def load_data_list(self) -> list[dict[str, Any]]:
        """The images and labels, each batch file read without running code (:mod:`steps.cifar_format`).

        mmcls's own loader unpickles the files in full; here they go through the bounded reader and the
        restricted unpickler, and must match the sizes and digests train-resnet validated (``expected``).
        """
        folder = Path(self.data_prefix["root"]) / self.base_folder
        files = self.test_list if self.test_mode else self.train_list
        batches = [cifar_format.read_batch(folder / str(name), self.expected.get(str(name)))[0] for name, _ in files]
        images = np.vstack([b.data for b in batches]).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        labels = [label for b in batches for label in b.labels]
        if self.CLASSES is None:
            self._load_meta()
        return [{"img": img, "gt_label": int(label)} for img, label in zip(images, labels, strict=True)]

    def _load_meta(self) -> None:
        """The class names from ``batches.meta``, read like the batches."""
        path = Path(self.data_prefix["root"]) / self.base_folder / str(self.meta["filename"])
        meta, _ = cifar_format.read_meta(path, self.expected.get(path.name))
        self._metainfo.setdefault("classes", list(meta.label_names))


@DATASETS.register_module(force=True)
class SharedvolCIFAR10Tensors(SharedvolCIFAR10):
    """The CIFAR-10 training set as one uint8 tensor: a whole batch is one gather, no per-image pipeline.

    For ``--augment batched``: the augmentation happens on the device (:mod:`steps.augment`). With a
    ``batch_sampler`` the loader calls :meth:`__getitems__` once per batch; ``sharedvol_cifar_collate`` passes
    the result through. Items are ``{"inputs": uint8 (3, 32, 32), "data_samples": int64 label}``.
    """

    def full_init(self) -> None:
        """Load the batch files, then keep the images as (N, 3, 32, 32) uint8 and the labels as int64."""
        import numpy as np
        import torch

        if self._fully_initialized:
            return
        super().full_init()
        infos = [self.get_data_info(i) for i in range(len(self))] if len(self) else []
        hwc = np.stack([info["img"] for info in infos]) if infos else np.zeros((0, 32, 32, 3), np.uint8)
        self.images = torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2)))
        self.labels = torch.tensor([int(info["gt_label"]) for info in infos], dtype=torch.int64)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        """One image and its label."""
        self.full_init()
        return {"inputs": self.images[idx], "data_samples": self.labels[idx]}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        """A whole batch in one gather (torch's loader calls this when the dataset has it)."""
        self.full_init()
        index = torch_index(indices)
        return {"inputs": self.images[index], "data_samples": self.labels[index]}


def torch_index(indices: list[int]) -> Any:
    """``indices`` as an int64 tensor."""
    import torch

    return torch.as_tensor(indices, dtype=torch.int64)


@METRICS.register_module(force=True)
class SharedvolEvaluation(BaseMetric):
    """Top-1/top-5 accuracy, mean cross-entropy and the confusion matrix of a classifier's test run.

    ``compute_metrics`` returns only scalars (what mmengine logs); the full result, confusion
    matrix included, is kept in :attr:`details` for test-resnet to write.
    """

    default_prefix = "sharedvol"

    def __init__(self, num_classes: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.details: dict[str, Any] = {}

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        """Keep each sample's class scores and true label."""
        for sample in data_samples:
            self.results.append((sample["pred_label"]["score"].cpu(), int(sample["gt_label"]["label"].item())))

    def compute_metrics(self, results: list[Any]) -> dict[str, float]:
        """Accuracy, loss and the confusion matrix (rows: true class, columns: predicted class)."""
        import torch

        scores = torch.stack([r[0] for r in results]).float()
        labels = torch.tensor([r[1] for r in results])
        top5 = scores.topk(min(5, self.num_classes), dim=1).indices
        predicted = top5[:, 0]
        matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        for truth, guess in zip(labels.tolist(), predicted.tolist(), strict=True):
            matrix[truth, guess] += 1
        probs = scores.clamp_min(1e-12)
        loss = float(-probs[torch.arange(len(labels)), labels].log().mean())
        self.details = {
            "size": len(labels),
            "top1": float((predicted == labels).float().mean()),
            "top5": float((top5 == labels[:, None]).any(dim=1).float().mean()),
            "loss": loss,
            "confusion_matrix": matrix.tolist(),
        }
        return {"top1": self.details["top1"], "top5": self.details["top5"], "loss": loss}
