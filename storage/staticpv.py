"""The static PV of a plan: create, check, free and (only when this call made it) delete it.

Create it or check the one there (same source, size, claim), free it for a new
claim of its name when its old claim is gone, and delete it again only when this call made it and no
claim references it.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client

from storage import errors, kube, ownership, plan, specs, validate

log = logging.getLogger(__name__)


def ensure(core: client.CoreV1Api, p: plan.Plan, *, timeout: float = 60.0) -> str:
    """Create the plan's PV, or check the one that exists; the new PV's UID when this call made it, else "".

    A PV of that name that is being deleted (a release a moment ago) is waited for, up to ``timeout``
    seconds, and then made again.
    """
    assert p.pv is not None
    name = p.pv["metadata"]["name"]
    try:
        pv = core.read_persistent_volume(name)
    except client.ApiException as e:
        if e.status != 404:
            raise errors.from_api(e, f"read PersistentVolume {name}") from e
        pv = None
    if pv is not None and pv.metadata.deletion_timestamp:
        log.info("PersistentVolume %s is being deleted; waiting until it is gone", name)
        if not _wait_gone(core, name, pv.metadata.uid, timeout=timeout):
            raise errors.ConflictError(
                f"PersistentVolume {name} is being deleted and still exists after {timeout:.0f} s",
                hint="a claim still uses it: wait until that claim is gone, then run this again",
            )
        pv = None
    if pv is None:
        try:
            made = kube.call(core.create_persistent_volume, f"create PersistentVolume {name}", p.pv)
        except errors.ConflictError:  # another call made it a moment ago: check it like any existing one
            pv = kube.call(core.read_persistent_volume, f"read PersistentVolume {name}", name)
        else:
            log.info("created PersistentVolume %s", name)
            return str(made.metadata.uid)
    _check_pv(pv, p)
    free_for_claim(core, pv, p)
    log.info("PersistentVolume %s exists and matches the plan", name)
    return ""


def _wait_gone(core: client.CoreV1Api, name: str, uid: str, *, timeout: float) -> bool:
    """Watch until PV ``name`` with UID ``uid`` is gone; False when the deadline passed."""
    what = f"PersistentVolume {name}"
    return kube.wait_gone(
        core.list_persistent_volume, name=name, uid=uid, what=what, kind="PersistentVolumes", timeout=timeout
    )


def _check_pv(pv: client.V1PersistentVolume, p: plan.Plan) -> None:
    name, want = pv.metadata.name, p.pv or {}
    if pv.metadata.deletion_timestamp:
        raise errors.ConflictError(
            f"PersistentVolume {name} is being deleted", hint="wait until it is gone, then run this again"
        )
    ref = pv.spec.claim_ref
    claim = (p.request.namespace, p.request.name)
    if ref is not None and (ref.namespace, ref.name) != claim:
        raise errors.ConflictError(
            f"PersistentVolume {name} is bound to claim {ref.namespace}/{ref.name}, not {claim[0]}/{claim[1]}",
            hint="release that claim first, or pick another claim name",
        )
    if "ReadWriteMany" not in (pv.spec.access_modes or []):
        raise errors.ConflictError(f"PersistentVolume {name} exists without ReadWriteMany", hint="delete it or rename")
    have = validate.quantity_bytes((pv.spec.capacity or {}).get("storage", "0") or "0", what="capacity")
    if have < validate.quantity_bytes(p.request.size):
        raise errors.ConflictError(
            f"PersistentVolume {name} holds {pv.spec.capacity['storage']}, less than the {p.request.size} asked for",
            hint="ask for at most that size, or release it and provision again",
        )
    have_src, want_src = _source(pv.spec), _source_of(want.get("spec", {}))
    if have_src != want_src:
        raise errors.ConflictError(
            f"PersistentVolume {name} exists on {have_src}, not on {want_src}",
            hint=f"use the same source as before, or release the claim first (sharedvol release {claim[1]} -n "
            f"{claim[0]}) and provision again",
        )


def _source(spec: client.V1PersistentVolumeSpec) -> str:
    if spec.nfs is not None:
        return f"NFS {spec.nfs.server}:{spec.nfs.path}"
    if spec.host_path is not None:
        nodes: list[str] = []
        affinity = spec.node_affinity
        if affinity is not None and affinity.required is not None:
            for term in affinity.required.node_selector_terms or []:
                for expr in term.match_expressions or []:
                    nodes += expr.values or []
        return f"hostPath {','.join(nodes) or '<any node>'}:{spec.host_path.path}"
    return "another kind of volume"


def _source_of(spec: dict[str, Any]) -> str:
    if "nfs" in spec:
        return f"NFS {spec['nfs']['server']}:{spec['nfs']['path']}"
    terms = spec.get("nodeAffinity", {}).get("required", {}).get("nodeSelectorTerms", [])
    nodes = [v for t in terms for e in t.get("matchExpressions", []) for v in e.get("values", [])]
    return f"hostPath {','.join(nodes) or '<any node>'}:{spec.get('hostPath', {}).get('path')}"


def free_for_claim(core: client.CoreV1Api, pv: client.V1PersistentVolume, p: plan.Plan) -> None:
    """Drop a claimRef UID whose claim is gone (release --keep-data, a deleted claim) so the new claim binds.

    Safe against a concurrent provision: the UID is removed only when no claim with that UID exists, and
    the JSON patch tests the UID it removes.
    """
    ref = pv.spec.claim_ref
    if ref is None or not ref.uid:
        return
    live = kube.read_claim(core, p.request.namespace, p.request.name)
    if live is not None and live.metadata.uid == ref.uid:
        return
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/spec/claimRef/uid", "value": ref.uid},
        {"op": "remove", "path": "/spec/claimRef/uid"},
    ]
    if ref.resource_version:
        ops.append({"op": "remove", "path": "/spec/claimRef/resourceVersion"})
    try:
        kube.call(core.patch_persistent_volume, f"free PersistentVolume {pv.metadata.name}", pv.metadata.name, ops)
    except errors.StorageError as e:
        raise errors.ConflictError(
            f"PersistentVolume {pv.metadata.name} is still reserved for an earlier claim {ref.uid} ({e.message})",
            hint="run the command again",
        ) from e
    log.info("PersistentVolume %s: its earlier claim is gone; reserved for the new one", pv.metadata.name)


def free_kept(core: client.CoreV1Api, p: plan.Plan) -> list[str]:
    """Free the PVs ``release --keep-data`` kept for this claim's name whose earlier claim is gone.

    A claim still used by a pod when it was released kept its UID in the PV's claimRef; once the claim is gone,
    the next ``provision`` of the name (of any strategy) drops it, so the new claim binds the same data.
    Returns the names of the PVs reserved for the name (freed or already free).
    """
    r = p.request
    try:
        listing = kube.call(
            core.list_persistent_volume, "list PersistentVolumes", label_selector=f"{specs.MANAGED_BY}={specs.MANAGER}"
        )
    except errors.ForbiddenError:  # a claim-only user provisions from a class: nothing kept can be seen, or freed
        log.info(
            "not allowed to list PersistentVolumes: a volume kept for %s/%s is not looked for", r.namespace, r.name
        )
        return []
    kept = []
    for pv in listing.items:
        ref = pv.spec.claim_ref if pv.spec else None
        marked = (pv.metadata.annotations or {}).get(ownership.KEPT_BY) == "release"
        if marked and ref is not None and (ref.namespace, ref.name) == (r.namespace, r.name):
            free_for_claim(core, pv, p)
            kept.append(pv.metadata.name)
    return kept


def delete_own(core: client.CoreV1Api, name: str, uid: str, namespace: str, claim: str) -> None:
    """Delete the PV this call made, unless a claim is now bound to it (then it belongs to that claim).

    A claim of that name that is not bound to it (the ReadWriteOnce claim that made the command fail)
    does not keep it.
    """
    try:
        pv = core.read_persistent_volume(name)
    except client.ApiException:
        return
    live = kube.read_claim(core, namespace, claim)
    bound = live is not None and live.spec.volume_name == name
    if pv.metadata.uid != uid or (pv.spec.claim_ref is not None and pv.spec.claim_ref.uid) or bound:
        log.info("PersistentVolume %s is in use by a claim; not deleting it", name)
        return
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
    try:
        core.delete_persistent_volume(name, body=body)
    except client.ApiException as e:
        if e.status in (404, 409):
            return
        raise errors.from_api(e, f"delete PersistentVolume {name}") from e
    log.info("deleted PersistentVolume %s again: its claim could not be created", name)


def wait_seen(core: client.CoreV1Api, name: str, *, timeout: float) -> None:
    """Watch the PV until the PV controller has synced it (phase Available, or Bound).

    The controller binds a pre-bound claim when it syncs the claim; if the claim arrives before the
    controller has seen its volume, binding waits for the controller's 15-second resync.
    """
    if kube.watch_volume(core, name, lambda pv: pv.status.phase in ("Available", "Bound"), timeout=timeout):
        return
    log.warning(
        "PersistentVolume %s was not synced by the PV controller in %.0f s; creating the claim anyway", name, timeout
    )
