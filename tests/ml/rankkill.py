"""Run a module as one torchrun rank, and SIGKILL the rank ``RANKKILL_RANK`` after its iteration ``RANKKILL_ITER``.

    torchrun --nproc-per-node 2 -m tests.ml.rankkill pipelines train ARGS...

The kill comes from inside the rank at a known iteration (the sharedvol hook's ``after_train_iter`` is wrapped here,
the code under test is not changed), so "killed in the middle of epoch 2" needs no timing. The killed process gets
``SIGKILL`` itself: no ``finally``, no ``atexit``, no flush; torchrun then stops the other ranks.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from typing import Any

from steps import hooks

RANK = os.environ.get("RANKKILL_RANK", "")
ITER = int(os.environ.get("RANKKILL_ITER", "0"))
_after_train_iter = hooks.SharedvolTrainHook.after_train_iter


def _after_train_iter_then_kill(
    self: Any, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
) -> None:
    _after_train_iter(self, runner, batch_idx, data_batch, outputs)
    if os.environ.get("RANK") == RANK and runner.iter + 1 == ITER:
        sys.stderr.write(f"rankkill: rank {RANK} killed after iteration {ITER}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    """Wrap the hook and run ``sys.argv[1]`` as ``__main__`` with the remaining arguments."""
    hooks.SharedvolTrainHook.after_train_iter = _after_train_iter_then_kill  # type: ignore[method-assign]
    target = sys.argv[1]
    sys.argv = [target, *sys.argv[2:]]
    runpy.run_module(target, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
