"""``python -m rig.kfp up|down --dir DIR``: the real KFP backend (``make kfp-up``/``kfp-down``).

``up`` uses the real node in ``--node-dir`` (``make node-up``); where none runs there it starts one, builds the
project's images and imports them (``scripts/node/image.sh``), and ``down`` then stops that node again. With
``--kwok`` it starts the test control plane of rig/cluster.py instead (pods never run there: that checks the
backend's wiring only). On the real node it also installs Kubeflow Trainer and JobSet (rig/trainer.py) and the
Role of k8s/trainjob-rbac, so ``sharedvol run --workers N`` runs there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from rig import cluster as cp
from rig import trainer
from rig.kfp import backend as kb
from rig.kfp import images, procs
from sharedvol import version

NODE_STARTED = "node-started"  # in the backend's directory: up started the node, down stops it


def _up(args: argparse.Namespace) -> int:
    workdir = Path(args.dir).resolve()
    plane = None
    if args.kwok:
        plane = cp.ControlPlane(workdir=workdir / "cluster", nodes=1)
        plane.start()
        print(f"control plane (kwok: pods do not run) up: export KUBECONFIG={plane.kubeconfig}")
        kubeconfig, kubectl_bin, address = plane.kubeconfig, plane.bin_dir, kb.machine_address()
    else:
        node_dir = Path(args.node_dir).resolve()
        node_env = node_dir / "node.env"
        if not cp.alive_pids(node_dir) and _start_node(node_dir, workdir) != 0:
            return 2
        env = cp.read_env(node_env)
        kubeconfig, kubectl_bin, address = Path(env["KUBECONFIG"]), Path(env["BIN_DIR"]), kb.machine_address()
        imported = images.import_all(kb.kfp_bin_dir(), Path(env["CONTAINERD_ADDRESS"]), Path(env["BIN_DIR"]) / "crictl")
        print(f"images imported into the node: {', '.join(imported) or 'none needed'}")
    backend = kb.KfpBackend(workdir=workdir, kubeconfig=kubeconfig, kubectl_bin=kubectl_bin, address=address)
    try:
        backend.start()
    except kb.BackendError as e:
        print(f"kfp-up: error: {e}", file=sys.stderr)
        if plane is not None:
            plane.stop()
        return 2
    if not args.kwok:
        try:
            seconds = trainer.install(trainer.Target(kubeconfig, kubectl_bin, node_dir), rbac=True)
        except trainer.TrainerInstallError as e:
            print(f"kfp-up: error: {e} (make kfp-down stops what started)", file=sys.stderr)
            return 2
        print(f"Kubeflow Trainer v2.0.0 and JobSet v0.8.2 ready in {seconds:.0f} s (sharedvol run --workers N)")
    print(f"KFP API: {backend.api_url}")
    print(f"KFP UI: {backend.ui_url} (loopback; sharedvol run --ui-url: the run's link and its metrics)")
    print(f"export KUBECONFIG={kubeconfig}")
    print(f"sharedvol run --host {backend.api_url} --ui-url {backend.ui_url} ...")
    print(f"stop with make kfp-down; pids in {workdir / 'pids'}")
    return 0


def _start_node(node_dir: Path, workdir: Path) -> int:
    """The real node in ``node_dir``, with the project's images built and imported into it; non-zero on failure."""
    from rig.node import realnode

    print(f"kfp-up: no node runs in {node_dir}: starting one (make node-up), then the images (make image)")
    if realnode.main(["up", "--dir", str(node_dir)]) != 0:
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / NODE_STARTED).write_text(f"{node_dir}\n")
    tag = os.environ.get("IMAGE_TAG", version.IMAGE_TAG)
    built = subprocess.run(
        [str(cp.REPO / "scripts" / "node" / "image.sh"), tag], env={**os.environ, "NODE_DIR": str(node_dir)}
    )
    if built.returncode != 0:
        print(
            f"kfp-up: the images did not build (log: {node_dir / 'images.log'}); make kfp-down stops the node",
            file=sys.stderr,
        )
    return built.returncode


def _down(workdir: Path) -> int:
    """Stop the backend, its kwok control plane if any, and the node ``up`` started if it did."""
    from rig.node import realnode

    code = procs.down(workdir)
    if (workdir / "cluster" / "pids").exists():
        cp.main(["down", "--dir", str(workdir / "cluster")])
    started = workdir / NODE_STARTED
    if started.exists():
        code = realnode.down(Path(started.read_text().strip())) or code
        started.unlink()
    return code


def main(argv: list[str] | None = None) -> int:
    """Parse and run ``up`` or ``down``."""
    parser = argparse.ArgumentParser(prog="python -m rig.kfp")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=str(cp.REPO / ".kfp"))
    parser.add_argument("--node-dir", default=str(cp.REPO / ".node"))
    parser.add_argument("--kwok", action="store_true", help="use the kwok test control plane (wiring check only)")
    args = parser.parse_args(argv)
    if args.action == "up":
        return _up(args)
    return _down(Path(args.dir).resolve())


if __name__ == "__main__":
    sys.exit(main())
