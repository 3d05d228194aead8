"""The kopf handlers of ``sharedvol serve``.

Claims: when a Pending claim asks for our provisioner (the ``volume.kubernetes.io/storage-provisioner``
annotation the PV controller sets), make its PV: named ``pvc-<claim uid>`` (a restart finds it and never
makes a second), hostPath under the class's ``basePath`` on the claim's node (the scheduler's
``selected-node`` for WaitForFirstConsumer), pre-bound by ``claimRef`` with the claim's UID.
Volumes: when a PV we made is Released and its reclaim policy is Delete, apply the class's ``onDelete``
to the directory (delete, archive, retain) and delete the PV; a Retain PV and its data are left alone.

Handlers are ``on.event`` handlers: kopf adds no finalizers and no annotations to users' objects. Every
outcome is a Kubernetes Event on the claim and a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from storage import errors
from storage.provisioner import settings as settings_mod
from storage.provisioner import volumes

log = logging.getLogger("sharedvol.provisioner")
SETTINGS = settings_mod.Settings()
REPORTER = "sharedvol.io/hostpath"


def configure(settings: settings_mod.Settings) -> None:
    """Set the settings the handlers use (called once before kopf starts)."""
    global SETTINGS
    SETTINGS = settings


def _core() -> Any:
    from kubernetes import client

    from storage import kube

    return client.CoreV1Api(kube.load_api_client(SETTINGS.kubeconfig or None))


def _event(core: Any, claim: Any, reason: str, message: str, kind: str = "Normal") -> None:
    """Post a Kubernetes Event on the claim (best effort: an Event that cannot be posted is only logged)."""
    from datetime import UTC, datetime

    from kubernetes import client

    now = datetime.now(UTC)
    body = {
        "metadata": {"generateName": f"{claim.metadata.name}.", "namespace": claim.metadata.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "name": claim.metadata.name,
            "namespace": claim.metadata.namespace,
            "uid": claim.metadata.uid,
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": REPORTER},
        "reportingComponent": REPORTER,
        "reportingInstance": REPORTER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        core.create_namespaced_event(claim.metadata.namespace, body)
    except client.ApiException as e:
        log.warning(
            "cannot post event %s on %s/%s: %s", reason, claim.metadata.namespace, claim.metadata.name, e.reason
        )


def provision(core: Any, claim: Any) -> str:
    """Make the PV for ``claim`` (or find the one a previous run made); return what happened.

    Raises:
        StorageError: the class is missing or malformed, or the API refused the PV.
    """
    from kubernetes import client

    name = volumes.pv_name(claim)
    try:
        existing = core.read_persistent_volume(name)
    except client.ApiException as e:
        if e.status != 404:
            raise errors.from_api(e, f"read PersistentVolume {name}") from e
        existing = None
    if existing is not None:
        return f"PersistentVolume {name} exists already"
    sc_name = claim.spec.storage_class_name
    try:
        sc = client.StorageV1Api(core.api_client).read_storage_class(sc_name)
    except client.ApiException as e:
        raise errors.from_api(e, f"read StorageClass {sc_name}") from e
    config = volumes.class_config(sc)
    ready = sorted(
        n.metadata.name
        for n in core.list_node().items
        if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
    )
    node = volumes.node_for(claim, config, ready)
    if node is None:
        return "waiting for the scheduler to pick a node (WaitForFirstConsumer)"
    pv = volumes.pv_for(claim, config, node, SETTINGS.provisioner)
    _make_directory(pv["spec"]["hostPath"]["path"])
    _event(core, claim, "Provisioning", f"making {name} at {node}:{pv['spec']['hostPath']['path']}")
    try:
        core.create_persistent_volume(pv)
    except client.ApiException as e:
        if e.status != 409:  # 409: a previous run of this service made it a moment ago
            raise errors.from_api(e, f"create PersistentVolume {name}") from e
    # Touch the claim so the PV controller syncs it now, not at its 15-second resync.
    core.patch_namespaced_persistent_volume_claim(
        claim.metadata.name, claim.metadata.namespace, {"metadata": {"annotations": {"sharedvol.io/provisioned": name}}}
    )
    message = f"made {name} ({pv['spec']['capacity']['storage']}) at {node}:{pv['spec']['hostPath']['path']}"
    _event(core, claim, "ProvisioningSucceeded", message)
    return message


def _make_directory(node_path: str) -> None:
    """Create the volume's directory, writable for the step image's user, when the base path is mounted here.

    kubelet would create it (hostPath DirectoryOrCreate) owned by root with mode 0755, which the non-root
    steps cannot write. On a node this service does not run on, kubelet's directory is what the pods get.
    """
    import os

    local = SETTINGS.local_path(node_path)
    base = os.path.dirname(local)
    if not os.path.isdir(base):
        log.warning("base path %s is not mounted here; kubelet will create %s owned by root", base, node_path)
        return
    os.makedirs(local, exist_ok=True)
    os.chmod(local, 0o777)  # any pod uid sharing the claim can write; the base directory itself stays 0755


@kopf.on.event("", "v1", "persistentvolumeclaims")
def on_claim(body: Any, type: str | None, **_: Any) -> None:
    """A claim changed: provision it when it is Pending and asks for our provisioner."""
    if type == "DELETED":
        return
    from kubernetes import client

    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    annotations = meta.get("annotations") or {}
    if not any(annotations.get(a) == SETTINGS.provisioner for a in volumes.PROVISIONER_ANNOTATIONS):
        return
    if status.get("phase") != "Pending" or spec.get("volumeName") or meta.get("deletionTimestamp"):
        return
    core = _core()
    try:
        claim = core.read_namespaced_persistent_volume_claim(meta["name"], meta["namespace"])
    except client.ApiException as e:
        if e.status == 404:
            return
        raise
    try:
        outcome = provision(core, claim)
    except errors.StorageError as e:
        log.error("claim %s/%s: %s", meta["namespace"], meta["name"], e)
        _event(core, claim, "ProvisioningFailed", str(e), kind="Warning")
        raise kopf.TemporaryError(str(e), delay=10) from e
    log.info("claim %s/%s: %s", meta["namespace"], meta["name"], outcome)


@kopf.on.event("", "v1", "persistentvolumes")
def on_volume(body: Any, type: str | None, **_: Any) -> None:
    """A PV changed: reclaim it when it is ours, Released, and its policy is Delete."""
    if type == "DELETED":
        return
    from kubernetes import client

    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    if (meta.get("annotations") or {}).get("pv.kubernetes.io/provisioned-by") != SETTINGS.provisioner:
        return
    if status.get("phase") != "Released" or spec.get("persistentVolumeReclaimPolicy") != "Delete":
        return
    core = _core()
    ref = spec.get("claimRef") or {}
    try:  # never touch data of a live claim: the claim the PV was made for must be gone
        live = core.read_namespaced_persistent_volume_claim(ref.get("name", ""), ref.get("namespace", ""))
        if live.metadata.uid == ref.get("uid"):
            log.info("PersistentVolume %s is Released but its claim still exists; leaving it", meta["name"])
            return
    except client.ApiException as e:
        if e.status != 404:
            raise
    on_delete = "delete"
    try:
        sc = client.StorageV1Api(core.api_client).read_storage_class(spec.get("storageClassName", ""))
        on_delete = volumes.class_config(sc).on_delete
    except client.ApiException:
        log.warning("StorageClass of %s is gone; deleting its directory (onDelete default)", meta["name"])
    node_path = (spec.get("hostPath") or {}).get("path", "")
    done = volumes.reclaim_directory(SETTINGS.local_path(node_path), on_delete) if node_path else "no directory"
    try:
        core.delete_persistent_volume(meta["name"])
    except client.ApiException as e:
        if e.status != 404:
            raise
    log.info("reclaimed PersistentVolume %s: %s", meta["name"], done)


@kopf.on.probe(id="provisioner")
def health(**_: Any) -> str:
    """What /healthz reports besides kopf's own state."""
    return SETTINGS.provisioner


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf settings: no peering, no finalizers or progress annotations on users' objects."""
    settings.peering.standalone = True
    settings.scanning.disabled = True  # core resources only: no watching of CRDs or namespaces (no RBAC for them)
    settings.posting.enabled = False
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="sharedvol.io")
    settings.watching.server_timeout = 60


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo:
    """Log in with the same configuration as the rest of sharedvol (kubeconfig or in-cluster)."""
    from storage import kube

    c = kube.load_api_client(SETTINGS.kubeconfig or None).configuration
    scheme, _sep, token = (c.api_key.get("authorization") or "").partition(" ")
    if c.api_key_prefix.get("authorization"):  # in-cluster: the prefix is kept apart from the token
        scheme, token = c.api_key_prefix["authorization"], c.api_key["authorization"]
    return kopf.ConnectionInfo(
        server=c.host,
        ca_path=c.ssl_ca_cert,
        insecure=not c.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=c.cert_file,
        private_key_path=c.key_file,
    )
