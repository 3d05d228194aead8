"""Images per second delivered to the model, per core: mmcls's stock input path against sharedvol's batched one.

Both paths are built by train-resnet's own config (``--augment stock`` and ``--augment batched``) and timed the
same way, in one run, on one thread and in one process (``num_workers=0``): iterate the mmengine train data
loader and run the model's data preprocessor in training mode, which is everything between the dataset and the
model's first layer. Stock: per-image RandomCrop + RandomFlip + PackClsInputs in the loader, then collate and
ClsDataPreprocessor. sharedvol: the training set as one uint8 tensor (one gather per batch), then one batched
crop + flip + normalize in SharedvolCifarPreprocessor. Goal: at least 50,000 images/s per core on sharedvol's path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from benchmarks import machine


def images_per_second(data_root: str, augment: str, batch: int, epochs: int) -> float:
    """Median over ``epochs`` passes of images/s through loader + preprocessor for one ``--augment`` path."""
    from mmcls.registry import MODELS
    from mmengine.runner import Runner

    from steps import config, mmcls_ext, train_resnet  # noqa: F401  (registers the dataset and preprocessor)

    cfg = train_resnet.TrainConfig(run_dir="/tmp/unused", data_root=data_root, batch_size=batch, augment=augment)
    c = config.build_config(cfg, device="cpu", work_dir="/tmp/unused", bf16=False)
    loader = Runner.build_dataloader(c.train_dataloader, seed=0)
    preprocessor = MODELS.build(c.data_preprocessor if "type" in c.data_preprocessor
                                else {**c.data_preprocessor, "type": "ClsDataPreprocessor"})  # fmt: skip
    rates = []
    for _ in range(epochs):
        n, start = 0, time.perf_counter()
        for data in loader:
            out = preprocessor(data, training=True)
            n += out["inputs"].shape[0]
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000, help="training images (default 10000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the data (default 3)")
    args = parser.parse_args()
    import torch
    from mmcls.utils import register_all_modules

    from steps import data

    torch.set_num_threads(1)
    register_all_modules(init_default_scope=True)
    with tempfile.TemporaryDirectory() as tmp:
        data.synthesize(tmp, train=args.images, test=10)
        stock = images_per_second(tmp, "stock", args.batch_size, args.epochs)
        ours = images_per_second(tmp, "batched", args.batch_size, args.epochs)
    print(f"machine: {machine.describe()}; torch {torch.__version__}, 1 thread, 1 process")
    print(f"{args.images} images, batch {args.batch_size}, median of {args.epochs} passes")
    machine.table(
        ("input path (loader + data preprocessor, training mode)", "images/s per core", "ratio"),
        [
            ("stock: per-image RandomCrop + RandomFlip + PackClsInputs, ClsDataPreprocessor", f"{stock:,.0f}", "1.00"),
            (
                "sharedvol: uint8 tensor dataset (one gather per batch), SharedvolCifarPreprocessor (batched)",
                f"{ours:,.0f}",
                f"{ours / stock:.2f}",
            ),
        ],
    )
    print(f"goal >= 50,000 images/s per core: {'met' if ours >= 50_000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
