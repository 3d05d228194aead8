"""The same epoch of train-resnet with 1 and 2 torchrun workers on this machine (``make bench-ddp``).

Each run is ``torchrun --standalone --nproc-per-node N -m benchmarks.ddp_timing ... pipelines train`` on the CPU
(gloo) on the same synthetic dataset, batch size per rank and seed, for 2 epochs: the first is warm-up, the second
is timed (``train/summary.json``'s ``epoch_seconds``; images/s counts the whole dataset, summed over the ranks).
The all-reduce time is each rank's wall time in DDP's gradient all-reduce during the timed epoch (synchronous,
waiting for the slower rank included; benchmarks/ddp_timing.py). torchrun gives each of several ranks one thread
(OMP_NUM_THREADS=1); one rank keeps torch's default. Also printed: the checkpoint bytes each published epoch
writes, for the volume's arithmetic in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from benchmarks import machine

REPO = Path(__file__).resolve().parent.parent


def run(workers: int, data_root: str, work: Path, batch: int) -> dict[str, float]:
    """One 2-epoch run with ``workers`` ranks; the timed epoch's numbers."""
    run_dir, timings = work / f"run-{workers}", work / f"timing-{workers}"
    timings.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
           "-m", "benchmarks.ddp_timing", str(timings), "pipelines", "train", "--run-dir", str(run_dir),
           "--data-root", data_root, "--epochs", "2", "--batch-size", str(batch), "--device", "cpu",
           "--num-workers", "0", "--log-interval", "1000"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench-ddp: the run with {workers} workers failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    seconds = summary["epoch_seconds"][1]
    images = summary["images_seen"] / 2  # the whole dataset per epoch
    allreduce = [json.loads(p.read_text())["allreduce_s_per_epoch"][1] for p in sorted(timings.glob("rank-*.json"))]
    checkpoint_bytes = sum(p.stat().st_size for p in (run_dir / "checkpoints").iterdir() if p.name != "latest.json")
    return {"seconds": seconds, "images_per_s": images / seconds, "allreduce_s": max(allreduce),
            "checkpoint_bytes": checkpoint_bytes}  # fmt: skip


def main() -> int:
    """Both runs, then the Markdown table and the machine line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="training images (default 512)")
    parser.add_argument("--batch-size", type=int, default=16, help="per rank (default 16)")
    args = parser.parse_args()
    import torch

    from steps import data

    with tempfile.TemporaryDirectory() as tmp:
        data.synthesize(tmp + "/data", train=args.images, test=10)
        results = {}
        for workers in (1, 2):
            print(f"{workers} worker(s): 2 epochs of {args.images} images ...", flush=True)
            results[workers] = run(workers, tmp + "/data", Path(tmp), args.batch_size)
    print(f"machine: {machine.describe()}; torch {torch.__version__}")
    print(f"{args.images} training images, batch {args.batch_size} per rank, gloo on the CPU, second epoch timed")
    machine.table(
        ["workers", "epoch (s)", "images/s", "all-reduce (s, slowest rank)", "all-reduce share", "checkpoint/epoch"],
        [
            (w, f"{r['seconds']:.1f}", f"{r['images_per_s']:.1f}", f"{r['allreduce_s']:.2f}",
             f"{100 * r['allreduce_s'] / r['seconds']:.0f} %", f"{r['checkpoint_bytes'] / 2**20:.1f} MiB")
            for w, r in results.items()
        ],
    )  # fmt: skip
    print(f"2 workers / 1 worker: {results[2]['images_per_s'] / results[1]['images_per_s']:.2f}x images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
