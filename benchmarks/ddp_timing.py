"""Run train-resnet as one torchrun rank with its DDP all-reduce timed (``make bench-ddp``).

    torchrun --nproc-per-node 2 -m benchmarks.ddp_timing OUT_DIR pipelines train ARGS...

A communication hook replaces DDP's default one with the same averaging all-reduce, run synchronously so that its
wall time can be read: the time each rank spends in the all-reduce of an epoch (waiting for the slower rank
included), written with the rank's epoch boundaries to ``OUT_DIR/rank-<RANK>.json``. The code under test is not
changed (the hook's class and the sharedvol hook's ``after_train_epoch`` are wrapped here).

No postponed annotations here: DDP checks the hook's annotations as objects (``dist.GradBucket``).
"""

import json
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from steps import hooks

SECONDS: list[float] = [0.0]  # the all-reduce time of the current epoch
PER_EPOCH: list[float] = []
_after_train_epoch = hooks.SharedvolTrainHook.after_train_epoch
_ddp_init = torch.nn.parallel.DistributedDataParallel.__init__


def timed_allreduce(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP's default averaging all-reduce of one gradient bucket, synchronous and timed."""
    t0 = time.perf_counter()
    tensor = bucket.buffer().div_(dist.get_world_size())
    dist.all_reduce(tensor)
    SECONDS[0] += time.perf_counter() - t0
    done: torch.futures.Future[torch.Tensor] = torch.futures.Future()
    done.set_result(tensor)
    return done


def _ddp_init_timed(self: Any, *args: Any, **kwargs: Any) -> None:
    _ddp_init(self, *args, **kwargs)
    self.register_comm_hook(None, timed_allreduce)


def _after_train_epoch_recorded(self: Any, runner: Any) -> None:
    PER_EPOCH.append(SECONDS[0])
    SECONDS[0] = 0.0
    _after_train_epoch(self, runner)


def main() -> None:
    """Wrap, run ``sys.argv[2]`` as ``__main__`` with the remaining arguments, write the rank's timings."""
    out = Path(sys.argv[1])
    torch.nn.parallel.DistributedDataParallel.__init__ = _ddp_init_timed  # type: ignore[method-assign]
    hooks.SharedvolTrainHook.after_train_epoch = _after_train_epoch_recorded  # type: ignore[method-assign]
    target = sys.argv[2]
    sys.argv = [target, *sys.argv[3:]]
    try:
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    rank = os.environ.get("RANK", "0")
    (out / f"rank-{rank}.json").write_text(json.dumps({"allreduce_s_per_epoch": PER_EPOCH}))


if __name__ == "__main__":
    main()
