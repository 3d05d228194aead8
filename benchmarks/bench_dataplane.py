"""The data plane on a real checkpoint: publish (save, digest, fsync, rename) + verify + load against a
plain ``torch.save`` + ``torch.load`` of the same checkpoint on the same disk, and a raw copy of the same
bytes (the disk's limit). Target: sharedvol <= 1.3x plain.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from benchmarks import machine


def checkpoint() -> dict:
    """A checkpoint shaped like mmengine's: ResNet-18 CIFAR weights plus SGD momentum buffers."""
    import torch
    from mmcls.registry import MODELS
    from mmcls.utils import register_all_modules

    from steps import train_resnet

    register_all_modules(init_default_scope=True)
    cfg = train_resnet.build_config(
        train_resnet.TrainConfig(run_dir="/tmp/unused", data_root="/tmp/unused"), device="cpu", work_dir="/tmp/unused"
    )
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    momentum = {k: torch.randn_like(v, dtype=torch.float32) for k, v in state.items() if v.is_floating_point()}
    return {"meta": {"epoch": 1, "iter": 10}, "state_dict": state, "optimizer": {"state": momentum}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    args = parser.parse_args()
    import torch

    from steps import dataplane

    ckpt = checkpoint()
    plain_t, ours_t, copy_t = [], [], []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        plain = Path(tmp) / "plain.pth"
        published = str(Path(tmp) / "run" / "checkpoints" / "latest.pth")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            torch.save(ckpt, plain)
            torch.load(plain, weights_only=False)
            plain_t.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            dataplane.publish(published, lambda f: torch.save(ckpt, f))
            torch.load(io.BytesIO(dataplane.read_verified(published)), weights_only=False)
            ours_t.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            shutil.copyfile(plain, Path(tmp) / "copy.pth")
            with open(Path(tmp) / "copy.pth", "rb") as f:
                while f.read(1 << 20):
                    pass
            copy_t.append(time.perf_counter() - t0)
        size_mb = plain.stat().st_size / 1e6
    p, o, c = statistics.median(plain_t), statistics.median(ours_t), statistics.median(copy_t)
    print(f"machine: {machine.describe()}; torch {torch.__version__}")
    print(f"checkpoint: {size_mb:.1f} MB, median of {args.repeats}")
    print("| what | seconds | MB/s | ratio |\n|---|---|---|---|")
    print(f"| torch.save + torch.load | {p:.3f} | {size_mb / p:.0f} | 1.00 |")
    print(f"| publish (save, sha256, fsync, rename) + verify + load | {o:.3f} | {size_mb / o:.0f} | {o / p:.2f} |")
    print(f"| raw copy + read of the same bytes | {c:.3f} | {size_mb / c:.0f} | {c / p:.2f} |")
    print(f"target <= 1.3x: {'met' if o / p <= 1.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
