"""Kubernetes Events posted by ``sharedvol serve``: on claims (Provisioning...) and on PVs (Reclaim...)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import CoreV1Api, V1PersistentVolume, V1PersistentVolumeClaim

log = logging.getLogger("sharedvol.provisioner")
REPORTER = "sharedvol.io/hostpath"
CLUSTER_EVENTS_NAMESPACE = "default"  # Events about cluster-scoped objects (PVs) live here
PREFIX = 200  # characters of the object's name in the Event's generateName (the API server adds 5; limit 253)


def post(core: CoreV1Api, claim: V1PersistentVolumeClaim, reason: str, message: str, kind: str = "Normal") -> None:
    """Post an Event on a claim (best effort: one that cannot be posted is only logged)."""
    meta = claim.metadata
    ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": meta.name, "namespace": meta.namespace}
    ref["uid"] = meta.uid
    _post(core, meta.namespace, meta.name, ref, reason, message, kind)


def post_on_volume(core: CoreV1Api, pv: V1PersistentVolume, reason: str, message: str, kind: str = "Warning") -> None:
    """Post an Event on a PersistentVolume (in namespace ``default``, as kubectl describe pv shows it)."""
    ref = {"apiVersion": "v1", "kind": "PersistentVolume", "name": pv.metadata.name, "uid": pv.metadata.uid}
    _post(core, CLUSTER_EVENTS_NAMESPACE, pv.metadata.name, ref, reason, message, kind)


def generate_name(name: str) -> str:
    """The Event's ``generateName`` for an object ``name``: a valid prefix whatever the name's length."""
    return f"{name[:PREFIX].rstrip('.-') or 'sharedvol'}."


def _post(
    core: CoreV1Api, namespace: str, name: str, ref: dict[str, Any], reason: str, message: str, kind: str
) -> None:
    now = datetime.now(UTC)
    body = {
        "metadata": {"generateName": generate_name(name), "namespace": namespace},
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
    except Exception as e:  # an Event is best effort; the log line says what happened
        log.warning("cannot post event %s on %s: %s", reason, name[:PREFIX], getattr(e, "reason", None) or e)
