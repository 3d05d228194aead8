"""The heartbeat of ``sharedvol serve``: a Lease it renews, which ``doctor`` and ``run`` read.

A service started any way (the k8s/fallback DaemonSet, or ``sharedvol serve`` on a laptop) renews the
``coordination.k8s.io`` Lease ``sharedvol-provisioner`` in its namespace (``SHAREDVOL_NAMESPACE``; default its
pod's namespace, or ``default`` for a service started by hand) every re-check period, labelled
``app.kubernetes.io/name: sharedvol-provisioner`` and annotated with the provisioner name it serves. A Lease
renewed within its ``leaseDurationSeconds`` means "running". An instance that serves one node (k8s/fallback's
DaemonSet: one per node) renews its own Lease, ``sharedvol-provisioner-<node>`` (:func:`lease_name`), annotated
with the node: one instance stopping (and deleting its Lease) leaves the others' heartbeats, and any fresh one
means "running".
Who may write Leases in that namespace can fake a heartbeat; that only changes what doctor says
(docs/threat-model.md).
"""

from __future__ import annotations

import hashlib
import logging
import socket
from datetime import UTC, datetime, timedelta

from kubernetes import client

log = logging.getLogger("sharedvol.provisioner")
NAME = "sharedvol-provisioner"
LABEL = "app.kubernetes.io/name"
SERVES = "sharedvol.io/provisioner"
NODE = "sharedvol.io/node"
FALLBACK_PROVISIONER = "sharedvol.io/hostpath"
LONGEST_NAME = 253  # a Lease's name is a DNS subdomain


def lease_name(node: str = "") -> str:
    """The Lease of the instance serving ``node``: ``sharedvol-provisioner-<node>``.

    ``sharedvol-provisioner`` for a service of every node (""). A node name too long for a Lease's name is cut, and
    the name ends with a hash of it.
    """
    if not node:
        return NAME
    name = f"{NAME}-{node}"
    if len(name) <= LONGEST_NAME:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:16]
    return f"{name[: LONGEST_NAME - 17].rstrip('.-')}-{digest}"


def beat(api: client.ApiClient, namespace: str, provisioner: str, duration_s: int, node: str = "") -> str:
    """Create or renew the Lease of the instance serving ``node`` ("": every node).

    Returns "" when done, else why not (for one log line; the service goes on).
    """
    leases = client.CoordinationV1Api(api)
    name = lease_name(node)
    now = datetime.now(UTC)
    spec: dict[str, object] = {
        "holderIdentity": socket.gethostname()[:128],
        "leaseDurationSeconds": duration_s,
        "renewTime": now,
    }
    annotations = {SERVES: provisioner, **({NODE: node} if node else {})}
    meta = {"name": name, "labels": {LABEL: NAME}, "annotations": annotations}
    body = {"metadata": meta, "spec": spec}
    try:
        try:
            leases.patch_namespaced_lease(name, namespace, body)
        except client.ApiException as e:
            if e.status != 404:
                raise
            leases.create_namespaced_lease(namespace, {"metadata": meta, "spec": {**spec, "acquireTime": now}})
    except client.ApiException as e:
        return f"cannot renew Lease {namespace}/{name}: HTTP {e.status} {e.reason}"
    except Exception as e:  # the heartbeat is best effort: the service's work goes on without it
        return f"cannot renew Lease {namespace}/{name}: {e}"
    return ""


def stop(api: client.ApiClient, namespace: str, node: str = "") -> None:
    """Delete the instance's Lease when it stops cleanly (best effort: a stale one expires by itself)."""
    name = lease_name(node)
    try:
        client.CoordinationV1Api(api).delete_namespaced_lease(name, namespace, _request_timeout=5)
    except Exception as e:  # stopping goes on; the Lease expires after its duration
        log.info("heartbeat: Lease %s/%s not deleted: %s", namespace, name, getattr(e, "reason", None) or e)


def running(api: client.ApiClient, provisioner: str) -> bool | None:
    """Whether some Lease of a service of ``provisioner`` was renewed within its duration; None: cannot tell."""
    try:
        items = client.CoordinationV1Api(api).list_lease_for_all_namespaces(label_selector=f"{LABEL}={NAME}").items
    except client.ApiException:  # no right to list Leases: say nothing of the heartbeat
        return None
    now = datetime.now(UTC)
    for lease in items:
        if lease.metadata is None or lease.spec is None or not isinstance(lease.spec.renew_time, datetime):
            continue
        if (lease.metadata.annotations or {}).get(SERVES) != provisioner:
            continue
        renewed = lease.spec.renew_time
        if renewed.tzinfo is None:
            renewed = renewed.replace(tzinfo=UTC)
        try:
            fresh = renewed + timedelta(seconds=lease.spec.lease_duration_seconds or 60) >= now
        except (OverflowError, ValueError, TypeError):  # renewed in the year 9999, or for ages: not a heartbeat
            continue
        if fresh and renewed <= now + timedelta(minutes=5):  # renewed in the future: a made-up Lease, not a clock
            return True
    return False


def fallback_running(api: client.ApiClient) -> bool | None:
    """Whether a ``sharedvol serve`` of sharedvol.io/hostpath runs; None when these credentials cannot tell.

    Running means: a fresh heartbeat Lease of any instance, or a ready pod of the DaemonSet (k8s/fallback) or of a
    Deployment (an install of before) ``sharedvol-provisioner`` in sharedvol-system: a service whose Lease RBAC is
    missing still counts.
    """
    beat = running(api, FALLBACK_PROVISIONER)
    if beat:
        return True
    apps, selector = client.AppsV1Api(api), f"{LABEL}={NAME}"
    try:
        daemonsets = apps.list_namespaced_daemon_set("sharedvol-system", label_selector=selector).items
        deployments = apps.list_namespaced_deployment("sharedvol-system", label_selector=selector).items
    except client.ApiException:
        return None if beat is None else False
    return any((d.status.number_ready or 0) > 0 for d in daemonsets if d.status) or any(
        (d.status.ready_replicas or 0) > 0 for d in deployments if d.status
    )
