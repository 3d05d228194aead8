"""Provisioning one claim: check what it asks for, make its directory, its PV, and say so on the claim.

When a Pending claim asks for our provisioner (the ``volume.kubernetes.io/storage-provisioner`` annotation the
PV controller sets; any user can write it, so the claim's class is read and must be ours), make its PV:
named ``pvc-<claim uid>`` (a restart finds it and never makes a second), hostPath under the class's
``basePath`` on the claim's node (the scheduler's ``selected-node`` for WaitForFirstConsumer), pre-bound by
``claimRef`` with the claim's UID, then marked as the service's own (:mod:`storage.ownership`).
Each claim is handled on its own: whatever goes wrong with one becomes a ``ProvisioningFailed`` Event on it
and one log line, and the re-check (:mod:`storage.provisioner.recheck`) tries it again with backoff.
An instance that serves one node (k8s/fallback's DaemonSet) provisions only the claims whose volume goes on its
node (:mod:`storage.provisioner.placement`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client import CoreV1Api, V1PersistentVolume, V1PersistentVolumeClaim

from storage import errors, ownership
from storage.provisioner import dirs, events, features, locks, placement, volumes
from storage.provisioner import settings as settings_mod

log = logging.getLogger("sharedvol.provisioner")


def wants(annotations: dict[str, str], phase: object, volume: object, deleting: bool, provisioner: str) -> bool:
    """Whether a claim with these fields is Pending, unbound, not being deleted and asks for ``provisioner``."""
    if not any(annotations.get(a) == provisioner for a in volumes.PROVISIONER_ANNOTATIONS):
        return False
    return phase == "Pending" and not volume and not deleting


def wants_claim(claim: V1PersistentVolumeClaim, provisioner: str) -> bool:
    """:func:`wants` for a claim object."""
    meta = claim.metadata
    phase = claim.status.phase if claim.status else None
    volume = claim.spec.volume_name if claim.spec else None
    return wants(meta.annotations or {}, phase, volume, bool(meta.deletion_timestamp), provisioner)


def try_provision(core: CoreV1Api, namespace: str, name: str, config: settings_mod.Settings) -> bool:
    """Read the claim and provision it if it is this instance's (:mod:`storage.provisioner.placement`).

    Returns False when that failed, after an Event and a log line when the claim is this instance's to report.
    One caller at a time per claim (:mod:`storage.provisioner.locks`): the second finds the first one's PV.

    Never raises: one claim cannot stop the caller (a kopf handler or the re-check loop).
    """
    with locks.held(f"claim/{namespace}/{name}"):
        return _try_provision(core, namespace, name, config)


def _try_provision(core: CoreV1Api, namespace: str, name: str, config: settings_mod.Settings) -> bool:
    claim, selected, placed = None, None, False
    try:
        claim = core.read_namespaced_persistent_volume_claim(name, namespace)
        if not wants_claim(claim, config.provisioner):
            return True
        selected = (claim.metadata.annotations or {}).get(features.SELECTED_NODE)
        if selected and not placement.serves(config, selected):
            if not _missing(core, selected) or not _reports(core, config, None):
                return True  # the instance on that node provisions it
            raise errors.NoNodeError(
                f"the node the scheduler chose for it, {selected[:253]}, does not exist (deleted meanwhile?)",
                hint="delete its pod and its annotation volume.kubernetes.io/selected-node: it is scheduled again",
            )
        where = place(core, claim, config)
        if where.node is None and not _reports(core, config, selected):
            return True  # no node yet (or a PV of no node): the instance on the first Ready node answers
        if where.node is not None and not placement.serves(config, where.node):
            return True
        placed = True
        outcome = provision(core, claim, where, config)
    except client.ApiException as e:
        if e.status == 404 and claim is None:
            return True
        why = str(errors.from_api(e, "provision it"))
        return _failed(core, claim, namespace, name, why, placed or _reports(core, config, selected))
    except errors.StorageError as e:
        return _failed(core, claim, namespace, name, str(e), placed or _reports(core, config, selected))
    except Exception as e:  # isolation: anything one claim causes stays with that claim
        why = f"unexpected {type(e).__name__}: {str(e)[:300]}"
        return _failed(core, claim, namespace, name, why, placed or _reports(core, config, selected))
    log.info("claim %s/%s: %s", namespace, name[:253], outcome)
    return True


def _missing(core: CoreV1Api, node: str) -> bool:
    """Whether Node ``node`` does not exist (no instance serves a claim of it: the one that answers reports it)."""
    try:
        core.read_node(node)
    except client.ApiException as e:
        return e.status == 404
    return False


def _reports(core: CoreV1Api, config: settings_mod.Settings, selected: str | None) -> bool:
    """Whether this instance reports on a claim it does not provision (yet).

    It does for a claim of its node (``selected``, already checked to be its own), and for one of no node when it is
    the instance that answers for those. When nodes cannot be listed it reports: an Event posted twice is better
    than none.
    """
    if not config.node_name or selected:
        return True
    try:
        return placement.answers_unplaced(core, config)
    except Exception as e:  # listing nodes failed: say so, and report
        log.warning("cannot list nodes to tell which instance reports: %s", getattr(e, "reason", None) or e)
        return True


def _failed(
    core: CoreV1Api, claim: V1PersistentVolumeClaim | None, namespace: str, name: str, why: str, reports: bool
) -> bool:
    if not reports:  # another instance posts it; this one only waits as for any failure
        log.debug("claim %s/%s: %s (reported by the instance that answers for it)", namespace, name, why)
        return False
    log.error("claim %s/%s: %s; will try again (periodic re-check)", namespace, name, why)
    if claim is not None:
        events.post(core, claim, "ProvisioningFailed", f"{why}; sharedvol serve will try again", kind="Warning")
    return False


@dataclass(frozen=True)
class Placement:
    """Where a claim's volume goes, once its claim and class are checked.

    Attributes:
        cls: its class's checked settings.
        node: the node that holds (or will hold) its directory: the existing PV's node when there is one, else
            :func:`storage.provisioner.features.node_for`'s; None while a WaitForFirstConsumer claim waits for
            the scheduler, or when the existing PV names no node.
        existing: its PV ``pvc-<claim uid>`` when one exists already.
    """

    cls: features.ClassConfig
    node: str | None
    existing: V1PersistentVolume | None = None


def place(core: CoreV1Api, claim: V1PersistentVolumeClaim, config: settings_mod.Settings) -> Placement:
    """Check ``claim`` and its class, and find where its volume goes.

    Raises:
        StorageError: a feature the service does not honour (named), the class is missing or malformed, or no
            node fits.
        ApiException: a call failed (the caller reports it).
    """
    features.check_claim(claim)
    sc_name = claim.spec.storage_class_name
    try:
        sc = client.StorageV1Api(core.api_client).read_storage_class(sc_name)
    except client.ApiException as e:
        if e.status == 404:
            raise errors.NotFoundError(f"StorageClass {sc_name} does not exist", hint="create it") from e
        raise
    cls = features.class_config(sc, config.provisioner)
    existing = _read_volume(core, volumes.pv_name(claim))
    if existing is not None:
        return Placement(cls, volumes.node_of(existing), existing)
    return Placement(cls, features.node_for(claim, cls, core.list_node().items))


def provision(core: CoreV1Api, claim: V1PersistentVolumeClaim, where: Placement, config: settings_mod.Settings) -> str:
    """Make the PV of ``claim`` where :func:`place` put it; return what was done, for the log.

    Raises:
        StorageError: a planted entry where its directory goes, or the API refused the PV.
        ApiException: a call failed (the caller reports it).
    """
    name = volumes.pv_name(claim)
    cls, node = where.cls, where.node
    if where.existing is not None:
        return _adopt(core, where.existing, claim, cls, config)
    if node is None:
        return "waiting for the scheduler to pick a node (WaitForFirstConsumer)"
    pv = volumes.pv_for(claim, cls, node, config.provisioner)
    path = pv["spec"]["hostPath"]["path"]
    directory = volumes.claim_directory(claim)
    with dirs.opened(config, cls.base_path) as base:
        if base is not None:
            meta = claim.metadata
            base.begin(dirs.Pending(meta.namespace, meta.name, meta.uid, directory))
            base.make(directory)
    _step(config, "directory")
    events.post(core, claim, "Provisioning", f"making {name} at {node}:{path}")
    _step(config, "event")
    try:
        made = core.create_persistent_volume(pv)
    except client.ApiException as e:
        if e.status != 409:  # 409: a previous run of this service made it a moment ago
            raise
        made = core.read_persistent_volume(name)
        if volumes.node_of(made) != node:  # another instance made it on its node: this directory is an orphan
            return f"{name} was made on {volumes.node_of(made)} meanwhile; the re-check removes {node}:{path}"
    _mark(core, made)
    _step(config, "volume")
    with dirs.opened(config, cls.base_path) as base:
        if base is not None:
            base.done(claim.metadata.uid)
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


def _read_volume(core: CoreV1Api, name: str) -> V1PersistentVolume | None:
    try:
        return core.read_persistent_volume(name)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def _mark(core: CoreV1Api, pv: V1PersistentVolume) -> None:
    """Record the PV's own UID on it: the proof that this service made it (:mod:`storage.ownership`)."""
    patch = {"metadata": {"annotations": {ownership.VOLUME_UID: pv.metadata.uid}}}
    core.patch_persistent_volume(pv.metadata.name, patch)


def _adopt(
    core: CoreV1Api,
    pv: V1PersistentVolume,
    claim: V1PersistentVolumeClaim,
    cls: features.ClassConfig,
    config: settings_mod.Settings,
) -> str:
    """The claim's PV exists: finish what a killed run of the service began (mark it, drop the record)."""
    name = pv.metadata.name
    if not ownership.not_service_made(pv, config.provisioner):
        with dirs.opened(config, cls.base_path) as base:
            if base is not None:
                base.done(claim.metadata.uid)
        return f"PersistentVolume {name} exists already"
    ref = pv.spec.claim_ref
    annotations = pv.metadata.annotations or {}
    ours = (
        annotations.get(ownership.PROVISIONED_BY) == config.provisioner
        and ownership.VOLUME_UID not in annotations
        and ref is not None
        and ref.uid == claim.metadata.uid
        and pv.spec.host_path is not None
        and pv.spec.host_path.path == f"{cls.base_path}/{volumes.claim_directory(claim)}"
    )
    with dirs.opened(config, cls.base_path) as base:
        began = base is None or any(p.uid == claim.metadata.uid for p in base.pending())
        if not (ours and began):
            raise errors.ConflictError(
                f"PersistentVolume {name} exists and was not made by sharedvol serve",
                hint=f"delete it (kubectl delete pv {name}) if it is not needed",
            )
        _mark(core, pv)
        if base is not None:
            base.done(claim.metadata.uid)
    return f"PersistentVolume {name} made by a previous run: marked as ours"


def _step(config: settings_mod.Settings, step: str) -> None:
    """Fault injection for tests: exit at once, as a killed process would, after ``step`` (see Settings)."""
    if config.crash_at == step:
        log.warning("SHAREDVOL_CRASH_AT=%s: exiting now, as if killed", step)
        os._exit(137)
