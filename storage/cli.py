"""``sharedvol doctor|provision|release``: thin over :mod:`storage`; kubernetes is imported when a command runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import Any

from storage import prepare as prep
from storage.provisioner import cli as provisioner_cli


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``doctor``, ``provision``, ``release`` and ``serve`` to the ``sharedvol`` parser."""
    p = sub.add_parser("doctor", help="what storage the cluster offers, and why each Pending claim is pending")
    _cluster_args(p)
    p.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("provision", help="create a ReadWriteMany claim that binds on this cluster, and wait for it")
    _cluster_args(p)
    p.add_argument("name", help="the claim's name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--size", default="20Gi", help="Kubernetes quantity (default 20Gi)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--storage",
        metavar="CHOICE",
        help="where the volume comes from, in the grammar every sharedvol command takes: auto (default), nfs, "
        "fallback, CLASS, class:CLASS, pvc:NAME (this claim, which you have), static, nfs:SERVER:/PATH",
    )
    how.add_argument("--class", dest="storage_class", help="a StorageClass that serves RWX (dynamic)")
    how.add_argument("--static", action="store_true", help="a PV made by sharedvol: hostPath on one node")
    how.add_argument(
        "--nfs", metavar="SERVER:/PATH", help="a PV made by sharedvol on this NFS export ([IPv6]:/PATH for IPv6)"
    )
    how.add_argument(
        "--existing", action="store_true", help="use the claim NAME you have (checked: ReadWriteMany and Bound)"
    )
    p.add_argument(
        "--host-path", default="/var/lib/sharedvol", help="base directory for --static (default /var/lib/sharedvol)"
    )
    p.add_argument("--node", help="node for --static (default: the first Ready node)")
    p.add_argument(
        "--owner",
        default=prep.DEFAULT_OWNER,
        help=f"UID:GID a --static volume's root is handed to, mode 0775 (default {prep.DEFAULT_OWNER}, the steps' "
        "user)",
    )
    p.add_argument(
        "--prepare-image",
        default=os.environ.get("SHAREDVOL_IMAGE", prep.DEFAULT_IMAGE),
        help=f"image of the pod that hands it over; needs sh, chown, chmod (env SHAREDVOL_IMAGE; default "
        f"{prep.DEFAULT_IMAGE})",
    )
    p.add_argument(
        "--no-prepare", action="store_true", help="leave a --static volume's root as the kubelet makes it (root, 0755)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and the objects; create nothing")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds to wait for Bound, and for the prepare pod, > 0 (default 120)",
    )
    p.set_defaults(func=_provision)

    p = sub.add_parser("release", help="delete a claim; delete or keep the PV sharedvol made for it")
    _cluster_args(p)
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--keep-data", action="store_true", help="keep the PV (and its data) for a later claim of this name")
    p.set_defaults(func=_release)

    provisioner_cli.register(sub)


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context")


def _api(args: argparse.Namespace) -> object:
    from storage import kube

    return kube.load_api_client(args.kubeconfig, args.context)


def kube_reachable(action: str, api: object) -> contextlib.AbstractContextManager[None]:
    """Transport failures inside the block become one line (see :func:`storage.kube.reachable`)."""
    from storage import kube

    return kube.reachable(action, api)


def _doctor(args: argparse.Namespace) -> int:
    from storage import doctor

    api = _api(args)
    with kube_reachable("run doctor", api):
        report = doctor.diagnose(api, args.namespace)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.describe())
    return 0


def _choice(args: argparse.Namespace) -> Any:
    """The ``--storage`` choice of ``provision NAME``, or the flag of the same choice (--class, --static...)."""
    from storage import choice, errors

    if args.storage is not None:
        chosen = choice.parse(args.storage)
        if chosen.kind == "claim" and chosen.name != args.name:
            raise errors.InvalidRequestError(
                f"--storage {chosen} names another claim than {args.name!r}",
                hint=f"name the claim you have: sharedvol provision {chosen.name} --storage pvc:{chosen.name}",
            )
        return chosen
    if args.existing:
        return choice.Choice("claim", args.name)
    if args.storage_class:
        return choice.Choice("class", args.storage_class)
    if args.static:
        return choice.Choice("hostpath")
    if args.nfs:
        return choice.Choice("export", args.nfs)
    return choice.AUTO


MAX_TIMEOUT_S = 86_400


def _provision(args: argparse.Namespace) -> int:
    from storage import errors, provide

    if not 0 < args.timeout <= MAX_TIMEOUT_S:  # inf and nan too: a deadline is a real number of seconds
        raise errors.InvalidRequestError(
            f"--timeout {args.timeout:g} is not between 0 and {MAX_TIMEOUT_S} seconds (a day)",
            hint="e.g. --timeout 120",
        )
    settings = None
    if not args.no_prepare:
        settings = prep.Settings(image=args.prepare_image, owner=args.owner, timeout_s=args.timeout)
        settings.validate()
    ask = provide.Ask(
        choice=_choice(args),
        name=args.name,
        namespace=args.namespace,
        size=args.size,
        host_path_base=args.host_path,
        node=args.node,
        timeout_s=args.timeout,
        prepare=settings,
        make=not args.dry_run,
    )
    done = provide.provide(_api(args), ask)
    print("\n".join(done.lines))
    if args.dry_run and done.plan is not None:
        objects = [o for o in (done.plan.pv, done.plan.claim) if o]
        if settings is not None and done.plan.volume is not None and done.plan.volume.host_path:
            objects.append(prep.pod(args.namespace, args.name, settings))
        print(json.dumps(objects, indent=2))
    return 0


def _release(args: argparse.Namespace) -> int:
    from storage import release

    print(release.release(_api(args), args.name, args.namespace, keep_data=args.keep_data).describe())
    return 0
