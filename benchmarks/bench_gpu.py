"""train-resnet on one GPU with its CUDA defaults: images/s and seconds per CIFAR-10 epoch.

Runs the real step (``train_resnet.train`` with ``--device cuda`` and every default the device decides: batched
on-device augmentation, min(8, cores) pinned persistent loader workers, channels_last, AMP bf16 or fp16) on a
generated CIFAR-format set of the real size (50,000 training images), for a few epochs; the first is warm-up.
Goal on one H100: an epoch in at most 3 s, so 200 epochs in at most 10 min. Where CUDA is absent it says so and
exits 0: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=50_000, help="training images (default 50000, CIFAR-10's)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.4, help="SGD learning rate for the larger batch (default 0.4)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs; the first is warm-up (default 4)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"bench-gpu did not run: no CUDA device is visible on this machine ({machine.describe()})")
        return 0
    from steps import data, train_resnet

    with tempfile.TemporaryDirectory() as tmp:
        data.synthesize(tmp + "/data", train=args.images, test=1000)
        summary = train_resnet.train(
            train_resnet.TrainConfig(
                run_dir=tmp + "/run", data_root=tmp + "/data", epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, device="cuda", log_interval=1000,
            )
        )  # fmt: skip
    timed = summary.epoch_seconds[1:] or summary.epoch_seconds
    epoch = statistics.median(timed)
    print(f"machine: {machine.describe()}; GPU {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print(f"{args.images} images, batch {args.batch_size}, {args.epochs} epochs (first is warm-up); settings:")
    print(f"  {summary.config}")
    machine.table(
        ("what", "measured", "goal (one H100)"),
        [
            ("seconds per epoch (median after warm-up; includes publishing the checkpoint)", f"{epoch:.2f}", "<= 3"),
            ("images/s", f"{args.images / epoch:,.0f}", ""),
            ("200 epochs, projected", f"{200 * epoch / 60:.1f} min", "<= 10 min"),
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
