"""Warm start-up time of the test control plane (binaries already cached), median of N starts."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from rig import cluster as cp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bin_dir = cp.binary_dir()
    times = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            plane = cp.ControlPlane(workdir=Path(tmp), nodes=2, bin_dir=bin_dir).start()
            # ready means: readyz answered and both kwok nodes exist
            elapsed = time.monotonic() - t0
            plane.stop()
        times.append(elapsed)
        print(f"start {i + 1}/{args.runs}: {elapsed:.2f} s", flush=True)
    print(f"machine: {machine.describe()}")
    print(f"control plane warm start-up: {machine.spread(times)} (target < 20 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
