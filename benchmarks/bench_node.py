"""The real node (root): ``make node-up`` warm, a tiny step pod from create to Succeeded, the images' builds (unchanged,
after a code change, and with ``--cold`` from no cache) and their import into the node.

Needs root and no other node running on the machine (it starts its own, in a temporary directory, and stops it).
Goals (issue 10): node-up warm <= 30 s, a tiny step pod create -> Succeeded <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from rig import cluster as cp
from rig import images
from rig.node import realnode
from tests.node import pods

TAG = images.IMAGE_TAG
STEP, PROVISIONER, NFS = f"sharedvol:{TAG}", f"sharedvol-provisioner:{TAG}", f"sharedvol-nfs-server:{TAG}"
OUT: dict[str, Any] = {"capture_output": True, "text": True, "check": True}
CONTEXT_FILES = ("requirements.txt", "pyproject.toml", "README.md", "storage", "steps", "pipelines", ".dockerignore")


def timed(cmd: list[str], **kwargs: object) -> float:
    """Seconds ``cmd`` took; its output is discarded; a failure stops the benchmark with its output."""
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return time.monotonic() - t0


def image_sh(env: dict[str, str]) -> dict[str, float]:
    """Run scripts/node/image.sh (what ``make image`` runs); the seconds it reports for each image."""
    out = subprocess.run(
        [str(cp.REPO / "scripts" / "node" / "image.sh"), TAG], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"scripts/node/image.sh failed ({out.returncode}):\n{out.stderr[-3000:]}")
    found = re.findall(r"^\[image\] built (\S+) in (\d+) s", out.stderr, re.MULTILINE)
    return {name: float(seconds) for name, seconds in found}


def node_up_warm(runs: int, bin_dir: Path) -> list[float]:
    """``make node-up`` start-up (control plane + containerd + kubelet + kube-proxy, to Node Ready), ``runs`` times."""
    times = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="sharedvol-bench-node-") as tmp:
            node = realnode.RealNode(workdir=Path(tmp), bin_dir=bin_dir)
            node.start()
            node.stop()
        times.append(node.startup_seconds)
        print(f"node-up {i + 1}/{runs}: {node.startup_seconds:.1f} s", flush=True)
    return times


def tiny_pods(node: realnode.RealNode, runs: int) -> list[float]:
    """Create -> Succeeded of a pod of the step image running ``sharedvol --help`` as uid 1000."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(node.kubeconfig))
    runner = pods.PodRunner(api, "default")
    times = []
    for i in range(runs):
        t0 = time.monotonic()
        result = runner.run(pods.step_pod(f"tiny-{i}", ["--help"]), timeout=120)
        elapsed = time.monotonic() - t0
        if result.phase != "Succeeded":
            raise SystemExit(f"tiny pod {i} ended {result.phase}: {result.logs[-500:]}")
        client.CoreV1Api(api).delete_namespaced_pod(f"tiny-{i}", "default", grace_period_seconds=0)
        times.append(elapsed)
        print(f"tiny pod {i + 1}/{runs}: {elapsed:.1f} s", flush=True)
    return times


def code_change_build(tmp: Path) -> float:
    """The step image rebuilt after a change to the project's code (a copy of the build context, one file edited)."""
    for name in CONTEXT_FILES:
        src = cp.REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp / name)
    (tmp / "docker").mkdir()
    shutil.copy2(cp.REPO / "docker" / "Dockerfile", tmp / "docker" / "Dockerfile")
    with (tmp / "storage" / "__init__.py").open("a") as f:
        f.write(f"\n# benchmark edit {time.time()}\n")
    certs = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    # The same build argument text as scripts/node/image.sh ("$(cat *.crt)": no trailing newline), so the cache hits.
    ca = "".join(c.read_text() for c in certs).rstrip("\n")
    cmd = ["docker", "build", "-q", "-t", f"sharedvol-bench:{TAG}", "-f", str(tmp / "docker" / "Dockerfile")]
    cmd += ["--build-arg", f"EXTRA_CA_CERTS={ca}"] if certs else []
    return timed([*cmd, str(tmp)], env={**os.environ, "DOCKER_BUILDKIT": "0"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also build every image with --no-cache (downloads GBs)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench-node: the real node needs root: run it as root", file=sys.stderr)
        return 1
    bin_dir = cp.binary_dir()
    results: list[str] = []

    def report(line: str) -> None:
        results.append(line)
        print(line, flush=True)

    up = node_up_warm(args.runs, bin_dir)
    report(f"make node-up warm: {machine.spread(up, 1)} (goal <= 30 s)")

    with tempfile.TemporaryDirectory(prefix="sharedvol-bench-node-") as tmp:
        node = realnode.RealNode(workdir=Path(tmp), bin_dir=bin_dir)
        node.start()
        try:
            env = {**os.environ, "NODE_DIR": tmp, "IMAGE_BUILD_LOG": f"{tmp}/images.log"}
            subprocess.run([str(cp.REPO / "scripts" / "node" / "base-image.sh")], check=True)
            if args.cold:
                cold = image_sh({**env, "NODE_DIR": "/nonexistent", "DOCKER_BUILD_ARGS": "--no-cache"})
                for image, seconds in cold.items():
                    report(f"image build cold (--no-cache; base image present) {image}: {seconds:.0f} s")
            t0 = time.monotonic()
            image_sh({**env, "NODE_DIR": "/nonexistent"})
            report(
                f"image build, nothing changed (the three images, scripts/node/image.sh): {time.monotonic() - t0:.1f} s"
            )
            with tempfile.TemporaryDirectory(prefix="sharedvol-bench-ctx-") as ctx:
                report(f"step image rebuild after a code change: {code_change_build(Path(ctx)):.0f} s")
            subprocess.run(["docker", "rmi", f"sharedvol-bench:{TAG}"], capture_output=True, check=False)
            # Every image but the pause image out of the node (older builds included), so the import is a first one.
            sock = str(node.layout.containerd_socket)
            ctr = ["ctr", "--address", sock, "-n", "k8s.io", "images"]
            crictl = [str(bin_dir / "crictl"), "--runtime-endpoint", f"unix://{sock}", "inspecti", "-o", "go-template"]
            pause = node.layout.pause_image
            keep = {pause, subprocess.run([*crictl, "--template", "{{.status.id}}", pause], **OUT).stdout.strip()}
            stale = [i for i in subprocess.run([*ctr, "ls", "-q"], **OUT).stdout.split() if i not in keep]
            subprocess.run([*ctr, "rm", *stale], capture_output=True, check=False)
            imports = timed([str(cp.REPO / "scripts" / "node" / "import.sh"), tmp, STEP, PROVISIONER, NFS])
            report(f"import of the three images into the node (first time or changed): {imports:.0f} s")
            again = timed([str(cp.REPO / "scripts" / "node" / "import.sh"), tmp, STEP, PROVISIONER, NFS])
            report(f"import again, the node has them (skipped by image id): {again:.1f} s")
            tiny = tiny_pods(node, max(args.runs, 3))
            report(f"tiny step pod create -> Succeeded: {machine.spread(tiny, 1)} (goal <= 10 s)")
        finally:
            node.stop()
    print(f"machine: {machine.describe()}")
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
