"""Kubernetes Events posted by ``sharedvol serve``: on claims (Provisioning...) and on PVs (ReclaimRefused)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("sharedvol.provisioner")
REPORTER = "sharedvol.io/hostpath"
CLUSTER_EVENTS_NAMESPACE = "default"  # Events about cluster-scoped objects (PVs) live here


def post(core: Any, claim: Any, reason: str, message: str, kind: str = "Normal") -> None:
    """Post an Event on a claim (best effort: one that cannot be posted is only logged)."""
    ref = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "name": claim.metadata.name,
        "namespace": claim.metadata.namespace,
        "uid": claim.metadata.uid,
    }
    _post(core, claim.metadata.namespace, claim.metadata.name, ref, reason, message, kind)


def post_on_volume(core: Any, pv: Any, reason: str, message: str, kind: str = "Warning") -> None:
    """Post an Event on a PersistentVolume (in namespace ``default``, as kubectl describe pv shows it)."""
    ref = {"apiVersion": "v1", "kind": "PersistentVolume", "name": pv.metadata.name, "uid": pv.metadata.uid}
    _post(core, CLUSTER_EVENTS_NAMESPACE, pv.metadata.name, ref, reason, message, kind)


def _post(core: Any, namespace: str, name: str, ref: dict[str, Any], reason: str, message: str, kind: str) -> None:
    from datetime import UTC, datetime

    from kubernetes import client

    now = datetime.now(UTC)
    body = {
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": ref,
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": REPORTER},
        "reportingComponent": REPORTER,
        "reportingInstance": REPORTER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        core.create_namespaced_event(namespace, body)
    except client.ApiException as e:
        log.warning("cannot post event %s on %s: %s", reason, name, e.reason)
    except Exception as e:
        log.warning("cannot post event %s on %s: %s", reason, name, e)
