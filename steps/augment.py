"""Batched, on-device CIFAR augmentation: the stock RandomCrop(32, padding=4) + RandomFlip(0.5) + normalize.

It is done for a whole batch of uint8 images at once by the model's data preprocessor.

The stock path augments one image at a time in the loader (numpy, per-image Python), which cannot feed a GPU.
Here the dataset yields the uint8 image as it is (pipeline: ``PackClsInputs`` only), and
:class:`SharedvolCifarPreprocessor` (an mmcls ``ClsDataPreprocessor``, registered in ``MODELS``) stacks the
batch, moves it to the device as uint8 (4x fewer bytes than float), then pads, crops, flips and normalizes it
there. Crop offsets are uniform over 0..2*pad in each axis and the flip probability is 0.5, as in the stock
transforms; :func:`crop_flip` with fixed offsets and flips gives the stock transforms' result bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from mmcls.models.utils.data_preprocessor import ClsDataPreprocessor
from mmcls.registry import MODELS
from mmcls.structures import ClsDataSample
from mmengine.registry import FUNCTIONS
from mmengine.structures import LabelData


def sample_params(
    batch: int, *, pad: int, flip_prob: float, device: Any = "cpu", generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image crop offsets (rows, columns; each uniform in 0..2*pad) and flip decisions (Bernoulli(flip_prob))."""
    top = torch.randint(0, 2 * pad + 1, (batch,), device=device, generator=generator)
    left = torch.randint(0, 2 * pad + 1, (batch,), device=device, generator=generator)
    flip = torch.rand((batch,), device=device, generator=generator) < flip_prob
    return top, left, flip


def crop_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, *, pad: int
) -> torch.Tensor:
    """Zero-pad each image by ``pad``, crop it back to its size at (top, left), mirror it where ``flip``; any dtype.

    The crops are one gather from a strided view of every window (no per-image Python); only the flipped
    images are mirrored.
    """
    b, _, h, w = images.shape
    windows = F.pad(images, (pad, pad, pad, pad)).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    out = windows[torch.arange(b, device=images.device), :, top, left]
    mirrored = flip.nonzero().squeeze(1)
    out[mirrored] = out[mirrored].flip(3)
    return out


@MODELS.register_module(force=True)
class SharedvolCifarPreprocessor(ClsDataPreprocessor):
    """mmcls's ``ClsDataPreprocessor`` plus the stock CIFAR train augmentation, batched on the model's device.

    Args:
        pad: zero padding before the random crop (the stock ``RandomCrop(padding=4)``).
        flip_prob: probability of a horizontal flip (the stock ``RandomFlip(prob=0.5)``).
        channels_last: hand the batch to the model in ``torch.channels_last`` memory format (faster convolutions
            on CUDA tensor cores).
        **kwargs: ``ClsDataPreprocessor``'s arguments (``mean``, ``std``, ``num_classes``, ``to_rgb``...).
    """

    def __init__(self, pad: int = 4, flip_prob: float = 0.5, channels_last: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pad = pad
        self.flip_prob = flip_prob
        self.channels_last = channels_last

    def forward(self, data: dict[str, Any], training: bool = False) -> dict[str, Any]:
        """Stack the uint8 batch, move it to the device, augment it there when training, then normalize.

        ``data_samples`` may be a tensor of labels (what :func:`cifar_collate` yields): the samples the model's
        loss needs are then made here, with the labels already on the device.
        """
        inputs, samples = data["inputs"], data.get("data_samples")
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        inputs = inputs.to(self.device, non_blocking=True)
        if training:
            top, left, flip = sample_params(len(inputs), pad=self.pad, flip_prob=self.flip_prob, device=inputs.device)
            inputs = crop_flip(inputs, top, left, flip, pad=self.pad)
        if isinstance(samples, torch.Tensor):
            out = super().forward({"inputs": inputs}, training)
            out["data_samples"] = [_sample(label) for label in samples.to(self.device, non_blocking=True).split(1)]
        else:
            out = super().forward({**data, "inputs": inputs}, training)
        if self.channels_last:
            out["inputs"] = out["inputs"].contiguous(memory_format=torch.channels_last)
        return out


def _sample(label: torch.Tensor) -> ClsDataSample:
    sample = ClsDataSample()
    sample.gt_label = LabelData(label=label)
    return sample


@FUNCTIONS.register_module(name="sharedvol_cifar_collate", force=True)
def cifar_collate(batch: Any) -> dict[str, torch.Tensor]:
    """Collate for :class:`steps.mmcls_ext.SharedvolCIFAR10Tensors`: a batch it already gathered passes as is.

    Returns ``{"inputs": uint8 (B, 3, 32, 32), "data_samples": int64 labels (B,)}``.
    """
    if isinstance(batch, dict):
        return batch
    return {
        "inputs": torch.stack([b["inputs"] for b in batch]),
        "data_samples": torch.stack([b["data_samples"] for b in batch]),
    }
