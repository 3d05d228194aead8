"""``python -m tests.kfp_backend.real up|down --dir DIR``: the real KFP backend (``make kfp-up``/``kfp-down``).

``up`` uses the real node of ``make node-up`` (its ``node.env`` in ``--node-dir``); with ``--kwok`` it starts the
test control plane of tests/cluster.py instead (pods never run there: that checks the backend's wiring only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests import cluster as cp
from tests.kfp_backend.real import backend as kb
from tests.kfp_backend.real import images, procs


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _up(args: argparse.Namespace) -> int:
    workdir = Path(args.dir).resolve()
    plane = None
    if args.kwok:
        plane = cp.ControlPlane(workdir=workdir / "cluster", nodes=1)
        plane.start()
        print(f"control plane (kwok: pods do not run) up: export KUBECONFIG={plane.kubeconfig}")
        kubeconfig, kubectl_bin, address = plane.kubeconfig, plane.bin_dir, kb.machine_address()
    else:
        node_env = Path(args.node_dir).resolve() / "node.env"
        if not node_env.exists():
            print(
                f"kfp-up: no real node in {node_env.parent}: start it with make node-up (or pass --kwok)",
                file=sys.stderr,
            )
            return 2
        env = read_env(node_env)
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
    print(f"KFP API: {backend.api_url}")
    print(f"ML Metadata as the KFP UI serves it: {backend.ui_url} (sharedvol run --ui-url: the run's metrics)")
    print(f"export KUBECONFIG={kubeconfig}")
    print(f"sharedvol run --host {backend.api_url} --ui-url {backend.ui_url} ...")
    print(f"stop with make kfp-down; pids in {workdir / 'pids'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse and run ``up`` or ``down``."""
    parser = argparse.ArgumentParser(prog="python -m tests.kfp_backend.real")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=str(cp.REPO / ".kfp"))
    parser.add_argument("--node-dir", default=str(cp.REPO / ".node"))
    parser.add_argument("--kwok", action="store_true", help="use the kwok test control plane (wiring check only)")
    args = parser.parse_args(argv)
    if args.action == "up":
        return _up(args)
    code = procs.down(Path(args.dir))
    if (Path(args.dir) / "cluster" / "pids").exists():
        cp.main(["down", "--dir", str(Path(args.dir) / "cluster")])
    return code


if __name__ == "__main__":
    sys.exit(main())
