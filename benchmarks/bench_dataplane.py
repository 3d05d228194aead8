"""The checkpoint handoff against plain ``torch.save`` + ``torch.load`` of the same training state, on the same disk.

Measured side by side in one run, interleaved (each repeat runs every case once), median of N:

- plain: ``torch.save(state, path)`` + ``torch.load(path, weights_only=False)`` (no digest, no fsync, runs code);
- handoff (train -> test): the weights written as safetensors by the library's own file writer, hashed (BLAKE3
  over the page cache), fsynced and renamed to their content address, then read once while hashing, checked and
  turned into tensor views;
- resume: what a resumed run needs: the weights (as above) and mmengine's training state without the weights
  (its tensors as safetensors, the small rest pickled into the same file), both published (manifest included),
  read while hashing, one after the other as train-resnet's resume reads them, and loaded: the tensors as views,
  the rest with ``weights_only=True`` and the allow-list;
- the whole publish of one epoch (both files + manifest, the previous epoch's files deleted), and a raw copy +
  read of the same bytes (the disk's limit).

Each publish is of a new epoch, as in training, so the previous epoch's files are deleted (on a thread, as the
training hook has it); each case waits for that deletion before it ends, so its cost stays in the case.

Goal: handoff and resume each <= 1.0x plain.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from benchmarks import machine


def training_state() -> dict[str, Any]:
    """A checkpoint shaped like mmengine's: ResNet-18 CIFAR weights, SGD momentum buffers, a message hub."""
    import numpy as np
    import torch
    from mmcls.registry import MODELS
    from mmcls.utils import register_all_modules
    from mmengine.logging import HistoryBuffer

    from steps import config, safeload, train_resnet

    register_all_modules(init_default_scope=True)
    c = config.build_config(train_resnet.TrainConfig(run_dir="/tmp/unused", data_root="/tmp/unused"), device="cpu",
                            work_dir="/tmp/unused")  # fmt: skip
    state = MODELS.build(c.model).state_dict()
    momentum = {i: {"momentum_buffer": torch.randn_like(v, dtype=torch.float32)}
                for i, v in enumerate(state.values()) if v.is_floating_point()}  # fmt: skip
    ckpt = {
        "meta": {"epoch": 1, "iter": 10, "seed": 0},
        "state_dict": state,
        "message_hub": {
            "log_scalars": {"train/loss": HistoryBuffer(list(np.linspace(2, 1, 100)), [1] * 100)},
            "runtime_info": {"epoch": 1, "iter": 10},
            "resumed_keys": {"train/loss": True},
        },
        "optimizer": {"state": momentum, "param_groups": [{"lr": 0.1, "params": list(momentum)}]},
    }
    safeload.encode_message_hub(ckpt)
    return ckpt


def interleaved_medians(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each function, run in turn ``repeats`` times (so a busy moment hits all of them)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    import torch

    from steps import background, checkpoint, safeload

    ckpt = training_state()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        plain_path, ckpt_dir = Path(tmp) / "plain.pth", str(Path(tmp) / "checkpoints")
        handoff_dir = str(Path(tmp) / "handoff")
        manifest_url = handoff_dir + "/latest.json"
        epochs = itertools.count(1)  # a new epoch each publish, as in training: the previous one is pruned

        def plain() -> None:
            torch.save(ckpt, plain_path)
            torch.load(plain_path, weights_only=False)

        def handoff() -> None:
            weights = safeload.weights_writer(ckpt["state_dict"], {})
            ref = checkpoint.publish_file(handoff_dir, 1, "safetensors", weights)
            m = checkpoint.Manifest(1, ref, ref, [], manifest_url)
            safeload.weights_from_buffer(checkpoint.read_verified(m, ref), ref.name)

        def publish_epoch() -> checkpoint.Manifest:  # as the training hook does (the old epoch pruned on a thread)
            weights = safeload.weights_writer(ckpt["state_dict"], {})
            state = safeload.state_writer(dict(ckpt, state_dict={}))
            return checkpoint.publish(ckpt_dir, epoch=next(epochs), weights=weights, resume=state,
                                      loss_per_epoch=[1.0], keep=1, prune_later=True)  # fmt: skip

        def resume() -> None:  # everything a resumed run needs: publish the epoch, then read and load it
            m = publish_epoch()
            r, w = checkpoint.read_verified(m, m.resume), checkpoint.read_verified(m, m.weights)  # as train-resnet
            loaded = safeload.resume_from_buffer(r, m.resume.name)
            loaded["state_dict"], _ = safeload.weights_from_buffer(w, m.weights.name)
            background.wait()  # the old epoch's deletion is part of this case's cost

        def publish_alone() -> None:
            publish_epoch()
            background.wait()

        def raw_copy() -> None:
            shutil.copyfile(plain_path, Path(tmp) / "copy.pth")
            with open(Path(tmp) / "copy.pth", "rb") as f:
                while f.read(1 << 20):
                    pass

        plain()
        names = [
            "plain: torch.save + torch.load (weights_only=False)",
            "handoff train -> test: publish weights, verified read, tensor views",
            "resume: publish weights + state + manifest, verified reads, weights_only load",
            "publish one epoch (weights + state + manifest, the previous epoch deleted), no read",
            "raw copy + read of the plain file (the disk's limit)",
        ]
        load_before = os.getloadavg()[0]
        medians = interleaved_medians([plain, handoff, resume, publish_alone, raw_copy], args.repeats)
        load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        rows = list(zip(names, medians, strict=True))
        size_mb = plain_path.stat().st_size / 1e6
        weights_mb = len(safeload.serialize_weights(ckpt["state_dict"], {})) / 1e6
    base = rows[0][1]
    print(f"machine: {machine.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"training state {size_mb:.1f} MB, weights {weights_mb:.1f} MB; median of {args.repeats}; {load}")
    print("| what | seconds | ratio to plain |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / base:.2f} |")
    for name, seconds in rows[1:3]:
        print(f"goal <= 1.0x for {name.split(':')[0]}: {'met' if seconds <= base else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
