"""Time per training iteration: train-resnet (mmengine Runner) against a bare PyTorch loop.

Same model (mmcls ResNet-18 CIFAR, built from the same config), same batch size, same data, same
thread count, measured side by side in one run. The first epoch of each is warm-up; the second is
timed. Target: train-resnet <= 1.10x the bare loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from benchmarks import machine


def bare_loop_seconds_per_iter(data_root: str, batch: int, iters: int) -> float:
    """Second-epoch time per iteration of a plain PyTorch loop over the same model and data."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from mmcls.registry import MODELS
    from mmcls.utils import register_all_modules

    from steps import config, data, train_resnet

    register_all_modules(init_default_scope=True)
    cfg = config.build_config(
        train_resnet.TrainConfig(run_dir="/tmp/unused", data_root=data_root, batch_size=batch),
        device="cpu",
        work_dir="/tmp/unused",
    )
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    arrays, labels = [], []
    import pickle

    for name in data.TRAIN_FILES:
        with open(Path(data_root) / data.BASE_FOLDER / name, "rb") as f:
            b = pickle.load(f, encoding="latin1")
        arrays.append(b["data"])
        labels.extend(b["labels"])
    images = torch.from_numpy(np.vstack(arrays).reshape(-1, 3, 32, 32).astype(np.float32))
    mean = torch.tensor([125.307, 122.961, 113.8575]).view(1, 3, 1, 1)
    std = torch.tensor([51.5865, 50.847, 51.255]).view(1, 3, 1, 1)
    targets = torch.tensor(labels)

    def epoch() -> float:
        start = time.perf_counter()
        order = torch.randperm(len(targets))
        for i in range(iters):
            idx = order[i * batch : (i + 1) * batch]
            x = (images[idx] - mean) / std
            if torch.rand(()) < 0.5:
                x = x.flip(3)
            logits = model.head(model.extract_feat(x))
            loss = F.cross_entropy(logits, targets[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
        return time.perf_counter() - start

    epoch()
    return epoch() / iters


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=640, help="training images (default 640)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import torch

    from steps import data, train_resnet

    threads = torch.get_num_threads()
    iters = args.images // args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        data.synthesize(tmp + "/data", train=args.images, test=10)
        print(f"bare PyTorch loop: {iters} iterations x 2 epochs ...", flush=True)
        bare = bare_loop_seconds_per_iter(tmp + "/data", args.batch_size, iters)
        print(f"train-resnet (mmengine Runner): {iters} iterations x 2 epochs ...", flush=True)
        summary = train_resnet.train(
            train_resnet.TrainConfig(
                run_dir=tmp + "/run", data_root=tmp + "/data", epochs=2, batch_size=args.batch_size, device="cpu",
                log_interval=max(1, iters),
            )
        )  # fmt: skip
        ours = summary.epoch_seconds[1] / iters
    print(f"machine: {machine.describe()}; torch {torch.__version__}, {threads} threads")
    print(f"batch {args.batch_size}, {iters} iterations per epoch, second epoch timed")
    machine.table(
        ("loop", "s / iteration", "ratio"),
        [("bare PyTorch", f"{bare:.3f}", "1.00"), ("train-resnet (mmengine)", f"{ours:.3f}", f"{ours / bare:.2f}")],
    )
    print(f"target <= 1.10x: {'met' if ours / bare <= 1.10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
