"""The fallback provisioner: claim created -> PV made by `sharedvol serve` -> claim Bound, median of N,
on the real control plane with the service running as a process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from rig import cluster as cp
from rig import kwait
from rig.paths import REPO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from kubernetes import client, config

    from storage import specs

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        plane = cp.ControlPlane(workdir=Path(tmp) / "cp", nodes=1).start()
        root = Path(tmp) / "node"
        (root / "var/lib/sharedvol").mkdir(parents=True)
        cmd = [sys.executable, "-m", "pipelines", "serve", "--kubeconfig", str(plane.kubeconfig)]
        cmd += ["--base-path-root", str(root), "--health-port", "0", "--text-logs"]
        service = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            api = config.new_client_from_config(str(plane.kubeconfig))
            core = client.CoreV1Api(api)
            client.StorageV1Api(api).create_storage_class(
                {
                    "metadata": {"name": "fallback"},
                    "provisioner": "sharedvol.io/hostpath",
                    "volumeBindingMode": "Immediate",
                }
            )
            core.create_namespace({"metadata": {"name": "bench"}})
            for i in range(-1, args.runs):  # claim -1 is warm-up: service and controllers starting
                name = f"claim-{i + 1}" if i >= 0 else "warm-up"
                t0 = time.perf_counter()
                core.create_namespaced_persistent_volume_claim(
                    "bench", specs.rwx_claim(name, "bench", "1Gi", "fallback")
                )
                kwait.until(
                    core.list_namespaced_persistent_volume_claim,
                    lambda c: c.status.phase == "Bound",
                    "bench",
                    timeout=120,
                    **kwait.named(name),
                )
                elapsed = time.perf_counter() - t0
                if i >= 0:
                    times.append(elapsed)
                print(f"{name}: Bound in {elapsed:.3f} s", flush=True)
        finally:
            service.terminate()
            service.wait()
            plane.stop()
    print(f"machine: {machine.describe()}")
    print(f"fallback claim created -> Bound: {machine.spread(times, 3)} (target <= 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
