"""train-resnet on several processes: torchrun's ranks, the process group, and the one rank that publishes.

torchrun (and Kubeflow Trainer's torch runtime, which hands torchrun its ``PET_*`` settings) starts one process per
rank with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` set. With ``WORLD_SIZE`` above
1 train-resnet runs under mmengine's ``pytorch`` launcher:

- the process group is started before the run directory is read (:func:`init`): gloo on the CPU, nccl on CUDA (one
  GPU per local rank);
- mmengine's ``DefaultSampler`` gives each rank its own share of every epoch, and the model is wrapped in
  :class:`SharedvolDDP` (mmengine's DDP, which also works on the CPU);
- rank 0 alone prunes the checkpoint directory and publishes each epoch; the others wait at a barrier for the commit
  point and then read the manifest it published (:meth:`steps.hooks.SharedvolTrainHook.after_train_epoch`);
- every rank reads the manifest it resumes from itself, through the same verified path, and the ranks compare what
  they read before training (:func:`agree`): they resume from the same published epoch or not at all.

With one process (no ``WORLD_SIZE``, or 1) every function here is a no-op and train-resnet is what it always was.
"""

from __future__ import annotations

import os
from typing import Any

from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from steps import errors

PUBLISHER = 0  # the rank that publishes


def world_size() -> int:
    """The number of ranks torchrun started (``WORLD_SIZE``; 1 without torchrun).

    Raises:
        ConfigError: ``WORLD_SIZE`` is not a positive whole number.
    """
    raw = os.environ.get("WORLD_SIZE", "1")
    digits = raw.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 6) or int(digits) < 1:  # "²" is a digit too
        raise errors.ConfigError(
            f"WORLD_SIZE={raw!r} is not a positive whole number",
            hint="start train-resnet with torchrun (it sets WORLD_SIZE), or unset WORLD_SIZE for one process",
        )
    return int(raw)


def launched() -> bool:
    """Whether this process is one of several ranks."""
    return world_size() > 1


def launcher() -> str:
    """The mmengine launcher for this process: ``pytorch`` under torchrun with several ranks, else ``none``."""
    return "pytorch" if launched() else "none"


def backend(device: str) -> str:
    """The collective backend for ``device``: ``nccl`` on CUDA, ``gloo`` on the CPU."""
    return "nccl" if device == "cuda" else "gloo"


def init(device: str) -> None:
    """Join the other ranks (once; nothing with one process).

    Raises:
        ConfigError: torchrun's rendezvous settings are missing.
        RunDirError: the other ranks cannot be reached.
    """
    if not launched():
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise errors.ConfigError(
            f"WORLD_SIZE is {world_size()} but {', '.join(missing)} is not set",
            hint="start train-resnet with torchrun, which sets them all",
        )
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    try:
        dist.init_process_group(backend=backend(device))
    except (RuntimeError, ValueError) as e:
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        raise errors.RunDirError(
            f"rank {os.environ['RANK']} cannot join the other ranks at {where}: {e}",
            hint="check that every worker runs and can reach the first one (torchrun's --rdzv settings)",
        ) from e


def finish() -> None:
    """Leave the other ranks (nothing with one process): destroy the process group.

    A gloo group left for the interpreter's exit to tear down can abort the process ("terminate called without an
    active exception", exit -6) after its work is done, and torchrun then reports the rank as failed.
    """
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def configure(c: Any) -> None:
    """Set mmengine's launcher in the config ``c``, and the DDP wrapper when there are several ranks."""
    c.launcher = launcher()
    if launched():
        c.model_wrapper_cfg = {"type": "SharedvolDDP", "broadcast_buffers": False, "find_unused_parameters": False}


def rank() -> int:
    """The rank of this process (0 with one process)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_publisher() -> bool:
    """Whether this process publishes (rank 0, or the only process)."""
    return rank() == PUBLISHER


def barrier() -> None:
    """Wait until every rank got here (nothing with one process)."""
    if launched():
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


def sum_over_ranks(values: list[float]) -> list[float]:
    """Each of ``values`` summed over the ranks (``values`` itself with one process)."""
    if not launched():
        return list(values)
    import torch
    from mmengine import dist as mdist

    total = torch.tensor(values, dtype=torch.float64)
    mdist.all_reduce(total, op="sum")
    return [float(v) for v in total.tolist()]


def agree(what: str, value: Any) -> None:
    """Refuse to go on unless every rank holds the same ``value`` (what it read, e.g. the epoch to resume).

    Raises:
        IntegrityError: the ranks read different things, naming each rank's.
    """
    if not launched():
        return
    from mmengine import dist as mdist

    seen = mdist.all_gather_object(value)
    if any(v != seen[0] for v in seen):
        views = "; ".join(f"rank {i}: {v}" for i, v in enumerate(seen))
        raise errors.IntegrityError(
            f"the ranks do not agree on {what} ({views})",
            hint="every rank must mount the same run directory; check the volume each worker mounts",
        )


@MODEL_WRAPPERS.register_module(force=True)
class SharedvolDDP(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel`` that also wraps a CPU model.

    mmengine hands every DDP wrapper ``device_ids=[LOCAL_RANK]``, which PyTorch refuses for a module on the CPU
    (gloo); this wrapper drops them there and keeps them on CUDA.
    """

    def __init__(self, module: Any, device_ids: list[int] | None = None, **kwargs: Any) -> None:
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)
