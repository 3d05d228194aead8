"""Storage speed: static-fallback claim create -> Bound on the real control plane (median of N), and
``sharedvol doctor --help`` start-up time, with proof that neither torch nor kfp is imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from rig import cluster as cp
from rig.paths import REPO


def bind_times(runs: int) -> list[float]:
    """Seconds from plan + create to Bound for ``runs`` static claims."""
    from kubernetes import client, config

    from storage import apply, plan

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        plane = cp.ControlPlane(workdir=Path(tmp), nodes=1).start()
        try:
            api = config.new_client_from_config(str(plane.kubeconfig))
            client.CoreV1Api(api).create_namespace({"metadata": {"name": "bench"}})
            # Warm-up: the first claim also waits for kube-controller-manager's informers to start.
            t0 = time.perf_counter()
            apply.apply(api, plan.make(api, plan.Request("warm-up", "bench", "1Gi", static=True)), timeout=120)
            print(f"warm-up claim (controller start-up included): {time.perf_counter() - t0:.3f} s", flush=True)
            for i in range(runs):
                t0 = time.perf_counter()
                p = plan.make(api, plan.Request(f"claim-{i}", "bench", "1Gi", static=True))
                result = apply.apply(api, p, timeout=60)
                times.append(time.perf_counter() - t0)
                assert result.phase == "Bound"
                print(f"claim {i + 1}/{runs}: Bound in {times[-1]:.3f} s", flush=True)
        finally:
            plane.stop()
    return times


def doctor_help() -> tuple[float, list[str]]:
    """Median start-up of ``sharedvol doctor --help`` and the heavy modules it imported."""
    probe = (
        "import sys, time; t = time.perf_counter(); from pipelines import cli; "
        "rc = 0\ntry:\n    cli.main(['doctor', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'kfp', 'mmengine', 'mmcls', 'kubernetes') if m in sys.modules]; "
        "print('HEAVY', ','.join(heavy))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times, heavy = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
        heavy = [m for m in out.stdout.split("HEAVY", 1)[1].strip().split(",") if m]
    return statistics.median(times), heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    times = bind_times(args.runs)
    startup, heavy = doctor_help()
    print(f"machine: {machine.describe()}")
    print(f"static claim create -> Bound: {machine.spread(times, 3)} (target <= 0.5 s)")
    print(f"sharedvol doctor --help: median {startup:.3f} s (target <= 1 s); heavy modules imported: {heavy or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
