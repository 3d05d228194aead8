"""The real node (root): ``make node-up`` warm, a tiny step pod from create to Succeeded, the images' builds (unchanged,
after a code change, and with ``--cold`` from no cache) and their import into the node.

Needs root and no other node running on the machine (it starts its own, in a temporary directory, and stops it).
Goals (issue 10): node-up warm <= 30 s, a tiny step pod create -> Succeeded <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import machine
from tests import cluster as cp
from tests.node import pods, realnode

TAG = "0.1.0"
STEP, PROVISIONER, NFS = f"sharedvol:{TAG}", f"sharedvol-provisioner:{TAG}", f"sharedvol-nfs-server:{TAG}"
CONTEXT_FILES = ("requirements.txt", "pyproject.toml", "README.md", "storage", "steps", "pipelines", ".dockerignore")


def timed(cmd: list[str], **kwargs: object) -> float:
    """Seconds ``cmd`` took; its output is discarded; a failure stops the benchmark with its output."""
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return time.monotonic() - t0


def build(image: str, context: Path, *extra: str, dockerfile: Path | None = None) -> float:
    """Seconds to build ``image`` with the classic builder (as scripts/node/image.sh does)."""
    cmd = ["docker", "build", "-q", "-t", image, *extra]
    if dockerfile:
        cmd += ["-f", str(dockerfile)]
    ca = Path("/usr/local/share/ca-certificates")
    certs = sorted(ca.glob("*.crt"))
    if certs and dockerfile:
        cmd += ["--build-arg", "EXTRA_CA_CERTS=" + "".join(c.read_text() for c in certs)]
    return timed([*cmd, str(context)], env={**os.environ, "DOCKER_BUILDKIT": "0"})


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
    return build(f"sharedvol-bench:{TAG}", tmp, dockerfile=tmp / "docker" / "Dockerfile")


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
    dockerfile = cp.REPO / "docker" / "Dockerfile"
    nfs_dir = cp.REPO / "k8s" / "nfs" / "server"

    up = node_up_warm(args.runs, bin_dir)
    results.append(f"make node-up warm: median {statistics.median(up):.1f} s, max {max(up):.1f} s (goal <= 30 s)")

    with tempfile.TemporaryDirectory(prefix="sharedvol-bench-node-") as tmp:
        node = realnode.RealNode(workdir=Path(tmp), bin_dir=bin_dir)
        node.start()
        try:
            env = {**os.environ, "NODE_DIR": tmp, "IMAGE_BUILD_LOG": f"{tmp}/images.log"}
            subprocess.run([str(cp.REPO / "scripts" / "node" / "base-image.sh")], check=True)
            if args.cold:
                for image, extra in ((PROVISIONER, ["--target", "provisioner"]), (STEP, []), (NFS, [])):
                    context, df = (nfs_dir, None) if image == NFS else (cp.REPO, dockerfile)
                    seconds = build(image, context, "--no-cache", *extra, dockerfile=df)
                    results.append(f"image build cold (--no-cache, base present) {image}: {seconds:.0f} s")
            warm = timed([str(cp.REPO / "scripts" / "node" / "image.sh"), TAG], env={**env, "NODE_DIR": "/nonexistent"})
            results.append(f"image build, nothing changed (all three images, scripts/node/image.sh): {warm:.1f} s")
            with tempfile.TemporaryDirectory(prefix="sharedvol-bench-ctx-") as ctx:
                results.append(f"step image rebuild after a code change: {code_change_build(Path(ctx)):.0f} s")
            subprocess.run(["docker", "rmi", f"sharedvol-bench:{TAG}"], capture_output=True, check=False)
            ctr = ["ctr", "--address", str(node.layout.containerd_socket), "-n", "k8s.io", "images", "rm"]
            subprocess.run(
                [*ctr, *(f"docker.io/library/{i}" for i in (STEP, PROVISIONER, NFS))], capture_output=True, check=False
            )
            imports = timed([str(cp.REPO / "scripts" / "node" / "import.sh"), tmp, STEP, PROVISIONER, NFS])
            results.append(f"import of the three images into the node (first time or changed): {imports:.0f} s")
            again = timed([str(cp.REPO / "scripts" / "node" / "import.sh"), tmp, STEP, PROVISIONER, NFS])
            results.append(f"import again, the node has them (skipped by image id): {again:.1f} s")
            tiny = tiny_pods(node, max(args.runs, 3))
            results.append(
                f"tiny step pod create -> Succeeded: median {statistics.median(tiny):.1f} s, "
                f"max {max(tiny):.1f} s (goal <= 10 s)"
            )
        finally:
            node.stop()
    print(f"machine: {machine.describe()}")
    for line in results:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
