"""End-to-end time of ``sharedvol demo`` (what ``make demo`` runs) after set-up, with each task's share.

Each run uses a fresh output directory, so data generation is included, as on a fresh machine.
Prints a Markdown table for BENCHMARKS.md's ``demo`` section. Target: <= 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from rig.paths import REPO

TASKS = ("prepare-data", "train-resnet", "test-resnet", "produce-metrics")
STAMP = r"(\d\d:\d\d:\d\d\.\d+) - INFO - "
TARGET_S = 180.0


def task_times(log: str) -> dict[str, float]:
    """Seconds per task, from kfp.local's 'Executing task' and 'Task ... finished' lines."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log)
    times = {}
    for task in TASKS:
        start = re.search(STAMP + f"Executing task '{task}'", plain)
        end = re.search(STAMP + f"Task '{task}' finished", plain)
        if start and end:
            t0, t1 = (datetime.datetime.strptime(m.group(1), "%H:%M:%S.%f") for m in (start, end))
            times[task] = (t1 - t0).total_seconds() % 86400
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2, help="demo runs (default 2)")
    parser.add_argument("demo_args", nargs="*", help="extra arguments for sharedvol demo (after --)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    walls: list[float] = []
    per_task: dict[str, list[float]] = {t: [] for t in TASKS}
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
            cmd = [sys.executable, "-m", "pipelines", "demo", "--output", tmp, *args.demo_args]
            t0 = time.monotonic()
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
            wall = time.monotonic() - t0
            logs = sorted(Path(tmp, "logs").glob("*.log"))  # the run's full log: kfp.local's timed task lines
            log = logs[0].read_text() if logs else ""
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
            print(f"demo run {i + 1} failed (exit {proc.returncode})")
            return 1
        walls.append(wall)
        for task, seconds in task_times(log).items():
            per_task[task].append(seconds)
        print(f"run {i + 1}/{args.runs}: {wall:.1f} s", flush=True)
    median = statistics.median(walls)
    settings = " ".join(args.demo_args) or "defaults: 512 train / 128 test generated images, 2 epochs, batch 32, CPU"
    print()
    print(f"Machine: {machine.describe()}. Demo settings: {settings}.")
    print()
    measured = f"{median:.1f} s (max {max(walls):.1f} s)"
    rows = [("`sharedvol demo` end to end (process start to exit)", measured, f"<= {TARGET_S:.0f} s")]
    rows += [(f"task {task}", f"{statistics.median(per_task[task]):.1f} s", "") for task in TASKS if per_task[task]]
    machine.table(("what", f"measured (median of {len(walls)})", "target"), rows)
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
