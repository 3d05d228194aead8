"""The kopf handlers of ``sharedvol serve``, and the provisioning and reclaiming they do.

Claims: when a Pending claim asks for our provisioner (the ``volume.kubernetes.io/storage-provisioner``
annotation the PV controller sets), make its PV: named ``pvc-<claim uid>`` (a restart finds it and never
makes a second), hostPath under the class's ``basePath`` on the claim's node (the scheduler's
``selected-node`` for WaitForFirstConsumer), pre-bound by ``claimRef`` with the claim's UID. A failure
is an Event and a log line; :mod:`storage.provisioner.recheck` tries again with backoff.
Volumes: when a PV this service made is Released and its reclaim policy is Delete, apply the class's
``onDelete`` to the directory (delete, archive, retain) and delete the PV. Only PVs named for their
claim's UID, labelled and annotated as ours, whose directory is the one this service would make, strictly
inside the base path after symlinks are resolved; anything else is refused with a Warning Event.

Handlers are ``on.event`` handlers: kopf adds no finalizers and no annotations to users' objects. The
settings come through kopf's ``memo`` (``memo.settings``).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from storage import errors, specs
from storage.provisioner import events, volumes
from storage.provisioner import settings as settings_mod

log = logging.getLogger("sharedvol.provisioner")


def core_api(config: settings_mod.Settings) -> Any:
    """A CoreV1Api with the service's cluster access."""
    from kubernetes import client

    from storage import kube

    return client.CoreV1Api(kube.load_api_client(config.kubeconfig or None))


def provision(core: Any, claim: Any, config: settings_mod.Settings) -> str:
    """Make the PV of ``claim`` (a V1PersistentVolumeClaim); return what was done, for the log.

    Raises:
        StorageError: the class is missing or malformed, no node, or the API refused the PV.
    """
    from kubernetes import client

    from storage import nodes

    name = volumes.pv_name(claim)
    try:
        core.read_persistent_volume(name)
        return f"PersistentVolume {name} exists already"
    except client.ApiException as e:
        if e.status != 404:
            raise errors.from_api(e, f"read PersistentVolume {name}") from e
    sc_name = claim.spec.storage_class_name
    try:
        sc = client.StorageV1Api(core.api_client).read_storage_class(sc_name)
        ready = sorted(n.metadata.name for n in nodes.ready(core.list_node().items))
    except client.ApiException as e:
        raise errors.from_api(e, f"read StorageClass {sc_name} and the nodes") from e
    cls = volumes.class_config(sc)
    node = volumes.node_for(claim, cls, ready)
    if node is None:
        if cls.binding_mode == "WaitForFirstConsumer":
            return "waiting for the scheduler to pick a node (WaitForFirstConsumer)"
        raise errors.NotFoundError("no Ready node to hold the volume", hint="join a node or set parameters.node")
    pv = volumes.pv_for(claim, cls, node, config.provisioner)
    path = pv["spec"]["hostPath"]["path"]
    volumes.make_directory(config, cls, path)
    _step(config, "directory")
    events.post(core, claim, "Provisioning", f"making {name} at {node}:{path}")
    _step(config, "event")
    try:
        core.create_persistent_volume(pv)
    except client.ApiException as e:
        if e.status != 409:  # 409: a previous run of this service made it a moment ago
            raise errors.from_api(e, f"create PersistentVolume {name}") from e
    _step(config, "volume")
    # Touch the claim so the PV controller syncs it now, not at its 15-second resync.
    touch = {"metadata": {"annotations": {"sharedvol.io/provisioned": name}}}
    try:
        core.patch_namespaced_persistent_volume_claim(claim.metadata.name, claim.metadata.namespace, touch)
    except client.ApiException as e:
        log.warning("cannot annotate claim %s/%s: %s", claim.metadata.namespace, claim.metadata.name, e.reason)
    _step(config, "touch")
    message = f"made {name} ({pv['spec']['capacity']['storage']}) at {node}:{path}"
    events.post(core, claim, "ProvisioningSucceeded", message)
    return message


def _step(config: settings_mod.Settings, step: str) -> None:
    """Fault injection for tests: exit at once, as a killed process would, after ``step`` (see Settings)."""
    if config.crash_at == step:
        import os

        log.warning("SHAREDVOL_CRASH_AT=%s: exiting now, as if killed", step)
        os._exit(137)


def wants(body: Any, config: settings_mod.Settings) -> bool:
    """Whether a claim (kopf's dict body) is Pending, unbound, not being deleted and asks for our provisioner."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    return _wants(
        meta.get("annotations") or {},
        status.get("phase"),
        spec.get("volumeName"),
        bool(meta.get("deletionTimestamp")),
        config,
    )


def wants_claim(claim: Any, config: settings_mod.Settings) -> bool:
    """:func:`wants` for a V1PersistentVolumeClaim."""
    return _wants(
        claim.metadata.annotations or {},
        claim.status.phase if claim.status else None,
        claim.spec.volume_name,
        bool(claim.metadata.deletion_timestamp),
        config,
    )


def _wants(annotations: dict[str, str], phase: Any, volume: Any, deleting: bool, config: Any) -> bool:
    if not any(annotations.get(a) == config.provisioner for a in volumes.PROVISIONER_ANNOTATIONS):
        return False
    return phase == "Pending" and not volume and not deleting


def try_provision(core: Any, namespace: str, name: str, config: settings_mod.Settings) -> bool:
    """Read the claim and provision it; False (after an Event and a log line) when that failed."""
    from kubernetes import client

    try:
        claim = core.read_namespaced_persistent_volume_claim(name, namespace)
    except client.ApiException as e:
        if e.status == 404:
            return True
        log.error("claim %s/%s: cannot read it: %s", namespace, name, e.reason)
        return False
    if claim.status.phase != "Pending" or claim.spec.volume_name or claim.metadata.deletion_timestamp:
        return True
    try:
        outcome = provision(core, claim, config)
    except errors.StorageError as e:
        log.error("claim %s/%s: %s; will try again (periodic re-check)", namespace, name, e)
        events.post(core, claim, "ProvisioningFailed", f"{e}; sharedvol serve will try again", kind="Warning")
        return False
    log.info("claim %s/%s: %s", namespace, name, outcome)
    return True


@kopf.on.event("", "v1", "persistentvolumeclaims")
def on_claim(body: Any, type: str | None, memo: Any, **_: Any) -> None:
    """A claim changed: provision it when it is Pending and asks for our provisioner."""
    config: settings_mod.Settings = memo.settings
    if type == "DELETED" or not wants(body, config):
        return
    meta = body["metadata"]
    if not try_provision(memo.core, meta["namespace"], meta["name"], config):
        memo.recheck.failed(meta.get("uid", ""))


@kopf.on.event("", "v1", "persistentvolumes")
def on_volume(body: Any, type: str | None, memo: Any, **_: Any) -> None:
    """A PV changed: reclaim it when it is ours, Released, and its policy is Delete."""
    config: settings_mod.Settings = memo.settings
    if type == "DELETED":
        return
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    if (meta.get("annotations") or {}).get(specs.PROVISIONED_BY) != config.provisioner:
        return
    if status.get("phase") != "Released" or spec.get("persistentVolumeReclaimPolicy") != "Delete":
        return
    reclaim(memo.core, meta["name"], config)


def reclaim(core: Any, name: str, config: settings_mod.Settings) -> None:
    """Apply the class's onDelete to a Released PV's directory and delete the PV, if the service made both."""
    from kubernetes import client

    try:
        pv = core.read_persistent_volume(name)
    except client.ApiException as e:
        if e.status == 404:
            return
        raise
    ref = pv.spec.claim_ref
    if pv.status.phase != "Released" or ref is None:
        return
    try:  # never touch data of a live claim: the claim the PV was made for must be gone
        live = core.read_namespaced_persistent_volume_claim(ref.name, ref.namespace)
        if live.metadata.uid == ref.uid:
            log.info("PersistentVolume %s is Released but its claim still exists; leaving it", name)
            return
    except client.ApiException as e:
        if e.status != 404:
            raise
    cls = volumes.ClassConfig()
    try:
        if pv.spec.storage_class_name:
            sc = client.StorageV1Api(core.api_client).read_storage_class(pv.spec.storage_class_name)
            cls = volumes.class_config(sc)
    except client.ApiException:
        log.warning("StorageClass of %s is gone; using the default basePath and onDelete", name)
    except errors.StorageError as e:
        log.warning("StorageClass of %s is malformed (%s); leaving the volume alone", name, e)
        return
    refusal = volumes.not_ours(pv, cls, config)
    if refusal:
        log.warning("PersistentVolume %s: not reclaiming it: %s", name, refusal)
        events.post_on_volume(core, pv, "ReclaimRefused", f"sharedvol serve leaves it alone: {refusal}")
        return
    node_path = pv.spec.host_path.path
    done = volumes.reclaim_directory(config.local_path(node_path), cls.on_delete)
    try:
        core.delete_persistent_volume(name, body=client.V1DeleteOptions(preconditions={"uid": pv.metadata.uid}))
    except client.ApiException as e:
        if e.status not in (404, 409):
            raise
    log.info("reclaimed PersistentVolume %s: %s", name, done)


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf settings: no peering, no finalizers or progress annotations on users' objects."""
    settings.peering.standalone = True
    settings.scanning.disabled = True  # core resources only: no watching of CRDs or namespaces (no RBAC for them)
    settings.posting.enabled = False
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="sharedvol.io")
    settings.watching.server_timeout = 60


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Log in with the same configuration as the rest of sharedvol (kubeconfig or in-cluster)."""
    from storage import kube

    c = kube.load_api_client(memo.settings.kubeconfig or None).configuration
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
