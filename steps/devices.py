"""The one place that decides the device: the environment switch before torch starts, then the device to use."""

from __future__ import annotations

import os

from steps import errors

DEVICES = ("auto", "cpu", "cuda")


def apply_env(device: str) -> None:
    """Hide every GPU from torch when ``device`` is ``cpu`` (mmengine uses a visible GPU otherwise).

    Call it before torch is imported: CUDA reads ``CUDA_VISIBLE_DEVICES`` once.
    """
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def resolve(requested: str) -> str:
    """``cpu`` or ``cuda`` for a requested device (``auto``: CUDA when one is visible).

    Raises:
        ConfigError: an unknown device, or CUDA asked for and none is visible.
    """
    if requested not in DEVICES:
        raise errors.ConfigError(f"--device {requested!r} is unknown", hint="use auto, cpu or cuda")
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise errors.ConfigError(
            "--device cuda but no CUDA device is visible",
            hint="run on a GPU node (the pipeline requests nvidia.com/gpu) or pass --device cpu",
        )
    return requested
