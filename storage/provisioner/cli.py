"""``sharedvol serve``: parse flags into :class:`Settings`, then run the operator until stopped."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``sharedvol`` parser."""
    p = sub.add_parser(
        "serve", help="the fallback provisioner for StorageClass sharedvol-hostpath (runs until stopped)"
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster service account, or $KUBECONFIG)")
    p.add_argument("--provisioner", help="provisioner name to serve (default sharedvol.io/hostpath)")
    p.add_argument("--base-path-root", help="where the node's filesystem is mounted here (default: as is)")
    p.add_argument("--health-port", type=int, help="port of /healthz (default 8080; 0: none)")
    p.add_argument("--text-logs", action="store_true", help="plain log lines instead of JSON")
    p.add_argument(
        "--recheck-seconds", type=float, help="seconds between re-checks of Pending claims (default 10; 0.1 to 3600)"
    )
    p.add_argument(
        "--node-name", help="serve only the volumes of this node (default: every node; $SHAREDVOL_NODE_NAME)"
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from storage.provisioner import service, settings

    config = settings.Settings.from_env(
        kubeconfig=args.kubeconfig,
        provisioner=args.provisioner,
        base_path_root=args.base_path_root,
        health_port=args.health_port,
        log_json=False if args.text_logs else None,
        recheck_s=args.recheck_seconds,
        node_name=args.node_name,
    )
    service.run(config)
    return 0
