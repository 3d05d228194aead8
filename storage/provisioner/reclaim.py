"""Reclaiming: a Released PV the service made, and directories a killed service left without a PV.

A PV is reclaimed when it is Released, its reclaim policy is Delete (``release --keep-data`` sets Retain:
the data is the user's again), the claim it was made for is gone, and it is the service's own
(:func:`storage.provisioner.volumes.not_ours`). Then the onDelete it carries (delete, archive, retain) is
applied to its directory, never through a link (:mod:`storage.provisioner.dirs`), and the PV is deleted.
Anything else is left alone with a ``ReclaimRefused`` Event on the PV and one log line. An instance that serves
one node reclaims only the PVs of its node, and sweeps only its node's records (:mod:`storage.provisioner.placement`).
"""

from __future__ import annotations

import logging

from kubernetes import client
from kubernetes.client import CoreV1Api, V1PersistentVolume

from storage import errors, ownership
from storage.provisioner import dirs, events, features, locks, placement, volumes
from storage.provisioner import settings as settings_mod

log = logging.getLogger("sharedvol.provisioner")


def wants(annotations: dict[str, str], phase: object, policy: object, provisioner: str) -> bool:
    """Whether a PV with these fields may be ours to reclaim now (the full check is :func:`reclaim`'s)."""
    return annotations.get(ownership.PROVISIONED_BY) == provisioner and phase == "Released" and policy == "Delete"


def try_reclaim(core: CoreV1Api, name: str, config: settings_mod.Settings) -> bool:
    """Reclaim PV ``name`` if it is ours and of this instance's node (:mod:`storage.provisioner.placement`).

    Returns False (after an Event and a log line) when that failed. Never raises. One caller at a time per PV
    (:mod:`storage.provisioner.locks`).
    """
    with locks.held(f"pv/{name}"):
        return _try_reclaim(core, name, config)


def _try_reclaim(core: CoreV1Api, name: str, config: settings_mod.Settings) -> bool:
    pv = None
    try:
        pv = core.read_persistent_volume(name)
        node = volumes.node_of(pv)
        if not (placement.serves(config, node) if node else placement.answers_unplaced(core, config)):
            return True  # the instance on its node reclaims it (or, for a PV of no node, the one that answers)
        outcome = reclaim(core, pv, config)
    except client.ApiException as e:
        if e.status == 404 and pv is None:
            return True
        return _failed(core, pv, name, str(errors.from_api(e, "reclaim it")))
    except errors.StorageError as e:
        return _failed(core, pv, name, str(e))
    except Exception as e:  # isolation: anything one volume causes stays with that volume
        return _failed(core, pv, name, f"unexpected {type(e).__name__}: {str(e)[:300]}")
    if outcome:
        log.info("PersistentVolume %s: %s", name, outcome)
    return True


def _failed(core: CoreV1Api, pv: V1PersistentVolume | None, name: str, why: str) -> bool:
    log.error("PersistentVolume %s: cannot reclaim it: %s", name, why)
    if pv is not None:
        events.post_on_volume(core, pv, "ReclaimFailed", f"sharedvol serve cannot reclaim it: {why}")
    return False


def reclaim(core: CoreV1Api, pv: V1PersistentVolume, config: settings_mod.Settings) -> str:
    """Apply the PV's onDelete to its directory and delete the PV, if the service made both; "" when not due.

    Raises:
        StorageError, ApiException, OSError: the caller reports them.
    """
    name = pv.metadata.name
    ref = pv.spec.claim_ref
    if (pv.status.phase if pv.status else None) != "Released" or ref is None:
        return ""
    if pv.spec.persistent_volume_reclaim_policy != "Delete":
        return ""  # Retain: the class's, or release --keep-data's; the data is the user's
    try:  # never touch data of a live claim: the claim the PV was made for must be gone
        live = core.read_namespaced_persistent_volume_claim(ref.name, ref.namespace)
        if live.metadata.uid == ref.uid:
            return "Released but its claim still exists; leaving it"
    except client.ApiException as e:
        if e.status != 404:
            raise
    refusal = volumes.not_ours(pv, config.provisioner)
    if refusal:
        log.warning("PersistentVolume %s: not reclaiming it: %s", name, refusal)
        events.post_on_volume(core, pv, "ReclaimRefused", f"sharedvol serve leaves it alone: {refusal}")
        return ""
    base_path, _sep, directory = pv.spec.host_path.path.rpartition("/")
    on_delete = (pv.metadata.annotations or {})[ownership.ON_DELETE]
    with dirs.opened(config, base_path) as base:
        done = base.reclaim(directory, on_delete) if base is not None else f"{base_path} is not mounted here"
    try:
        core.delete_persistent_volume(name, body=client.V1DeleteOptions(preconditions={"uid": pv.metadata.uid}))
    except client.ApiException as e:
        if e.status not in (404, 409):
            raise
    return f"reclaimed: {done}"


def sweep(core: CoreV1Api, config: settings_mod.Settings) -> None:
    """Finish or undo what a killed service left: each pending record of each base path it serves.

    A record whose PV exists is finished (the PV marked as ours, the record dropped); one whose claim is gone
    and that has no PV names an orphan directory, which is removed. Never raises: each record on its own.
    """
    try:
        classes = client.StorageV1Api(core.api_client).list_storage_class().items
    except Exception as e:  # the next re-check tries again
        log.warning("orphan sweep: cannot list StorageClasses: %s", getattr(e, "reason", None) or e)
        return
    bases = {settings_mod.DEFAULT_BASE}
    for sc in classes:
        if sc.provisioner == config.provisioner:
            try:
                bases.add(features.class_config(sc, config.provisioner).base_path)
            except errors.StorageError:
                continue  # its claims get the Event; it has no directories of ours
    for base_path in sorted(bases):
        with dirs.opened(config, base_path) as base:
            if base is None:
                continue
            try:
                records = base.pending()
            except errors.StorageError as e:  # its claims get the same error as an Event when provisioned
                log.error("orphan sweep: %s", e)
                continue
            for record in records:
                try:
                    _settle(core, base, record, config)
                except Exception as e:  # isolation: one record never stops the sweep
                    log.error("orphan sweep: %s/%s: %s", base_path, record.directory, e)


def _settle(core: CoreV1Api, base: dirs.Base, record: dirs.Pending, config: settings_mod.Settings) -> None:
    """One pending record: its PV exists (finish: mark it, drop the record), or its claim is gone (undo)."""
    try:
        pv = core.read_persistent_volume(f"pvc-{record.uid}")
    except client.ApiException as e:
        if e.status != 404:
            raise
        pv = None
    elsewhere = pv is not None and not placement.serves(config, volumes.node_of(pv))
    if pv is None or elsewhere:
        if pv is None:
            try:
                claim = core.read_namespaced_persistent_volume_claim(record.name, record.namespace)
                if claim.metadata.uid == record.uid:
                    return  # provisioning goes on (the claim's handler or the re-check finishes it)
            except client.ApiException as e:
                if e.status != 404:
                    raise
        # no claim and no PV, or the claim's PV made on another node (two instances raced): no pod ever uses it
        done = base.reclaim(record.directory, "delete")
        why = "its PV is on another node" if elsewhere else "is gone and has no PV"
        log.info("orphan sweep: claim %s/%s %s: %s", record.namespace, record.name, why, done)
        base.done(record.uid)
        return
    annotations = pv.metadata.annotations or {}
    ref, host = pv.spec.claim_ref, pv.spec.host_path
    made_here = (
        annotations.get(ownership.PROVISIONED_BY) == config.provisioner
        and ownership.VOLUME_UID not in annotations
        and ref is not None
        and ref.uid == record.uid
        and host is not None
        and host.path == f"{base.node_path}/{record.directory}"
    )
    if made_here:  # killed between creating the PV and marking it: mark it, and it is reclaimed as usual
        patch = {"metadata": {"annotations": {ownership.VOLUME_UID: pv.metadata.uid}}}
        core.patch_persistent_volume(pv.metadata.name, patch)
    base.done(record.uid)
