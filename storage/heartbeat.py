"""The heartbeat of ``sharedvol serve``: a Lease it renews, which ``doctor`` and ``run`` read.

A service started any way (the k8s/fallback Deployment, or ``sharedvol serve`` on a laptop) renews the
``coordination.k8s.io`` Lease ``sharedvol-provisioner`` in its namespace (``SHAREDVOL_NAMESPACE``; default its
pod's namespace, or ``default`` for a service started by hand) every re-check period, labelled
``app.kubernetes.io/name: sharedvol-provisioner`` and annotated with the provisioner name it serves. A Lease
renewed within its ``leaseDurationSeconds`` means "running".
Who may write Leases in that namespace can fake a heartbeat; that only changes what doctor says
(docs/threat-model.md).
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, timedelta

from kubernetes import client

log = logging.getLogger("sharedvol.provisioner")
NAME = "sharedvol-provisioner"
LABEL = "app.kubernetes.io/name"
SERVES = "sharedvol.io/provisioner"
FALLBACK_PROVISIONER = "sharedvol.io/hostpath"


def beat(api: client.ApiClient, namespace: str, provisioner: str, duration_s: int) -> str:
    """Create or renew the Lease; "" when done, else why not (for one log line; the service goes on)."""
    leases = client.CoordinationV1Api(api)
    now = datetime.now(UTC)
    spec: dict[str, object] = {
        "holderIdentity": socket.gethostname()[:128],
        "leaseDurationSeconds": duration_s,
        "renewTime": now,
    }
    meta = {"name": NAME, "labels": {LABEL: NAME}, "annotations": {SERVES: provisioner}}
    body = {"metadata": meta, "spec": spec}
    try:
        try:
            leases.patch_namespaced_lease(NAME, namespace, body)
        except client.ApiException as e:
            if e.status != 404:
                raise
            leases.create_namespaced_lease(namespace, {"metadata": meta, "spec": {**spec, "acquireTime": now}})
    except client.ApiException as e:
        return f"cannot renew Lease {namespace}/{NAME}: HTTP {e.status} {e.reason}"
    except Exception as e:  # the heartbeat is best effort: the service's work goes on without it
        return f"cannot renew Lease {namespace}/{NAME}: {e}"
    return ""


def stop(api: client.ApiClient, namespace: str) -> None:
    """Delete the Lease when the service stops cleanly (best effort: a stale one expires by itself)."""
    try:
        client.CoordinationV1Api(api).delete_namespaced_lease(NAME, namespace, _request_timeout=5)
    except Exception as e:  # stopping goes on; the Lease expires after its duration
        log.info("heartbeat: Lease %s/%s not deleted: %s", namespace, NAME, getattr(e, "reason", None) or e)


def running(api: client.ApiClient, provisioner: str) -> bool | None:
    """Whether some Lease of a service of ``provisioner`` was renewed within its duration; None: cannot tell."""
    try:
        items = client.CoordinationV1Api(api).list_lease_for_all_namespaces(label_selector=f"{LABEL}={NAME}").items
    except client.ApiException:  # no right to list Leases: say nothing of the heartbeat
        return None
    now = datetime.now(UTC)
    for lease in items:
        if (lease.metadata.annotations or {}).get(SERVES) != provisioner or lease.spec.renew_time is None:
            continue
        renewed = lease.spec.renew_time
        if renewed.tzinfo is None:
            renewed = renewed.replace(tzinfo=UTC)
        if renewed + timedelta(seconds=lease.spec.lease_duration_seconds or 60) >= now:
            return True
    return False


def fallback_running(api: client.ApiClient) -> bool | None:
    """Whether a ``sharedvol serve`` of sharedvol.io/hostpath runs; None when these credentials cannot tell.

    Running means: a fresh heartbeat Lease, or a ready Deployment ``sharedvol-provisioner`` in sharedvol-system
    (a service whose Lease RBAC is missing still counts).
    """
    beat = running(api, FALLBACK_PROVISIONER)
    if beat:
        return True
    try:
        deployments = (
            client.AppsV1Api(api).list_namespaced_deployment("sharedvol-system", label_selector=f"{LABEL}={NAME}").items
        )
    except client.ApiException:
        return None if beat is None else False
    return any((d.status.ready_replicas or 0) > 0 for d in deployments if d.status)
