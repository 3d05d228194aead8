"""Carry out a plan: create the PV and the claim idempotently, then watch until Bound or a clear failure.

With ``prepare`` settings, a static hostPath volume's root is then handed to the steps' user by one short
pod (:mod:`storage.prepare`). A rerun finds what exists and checks that it matches (a PV on another export
or path is a conflict). Two provisions of one name at once both succeed with one PV and one claim: a PV or
claim that appears between a read and a create is checked like one that was there. A PV is deleted again
only when this call made it (same UID) and no claim references it. A PV that ``release --keep-data`` (or a
deleted claim) left Released is made Available for the claim of its name again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from storage import errors, kube, plan, staticpv, wait
from storage import prepare as prep

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What :func:`apply` did.

    Attributes:
        plan: the plan carried out.
        phase: the claim's phase at the end (Bound, or Pending when waiting for a first consumer or not waiting).
        volume: the bound PV's name ("" when not bound yet).
        created: ``kind/name`` of each object this call created (a rerun creates nothing).
        waited_s: seconds spent waiting.
        note: what the claim is waiting for, when it is not Bound.
        prepared: how the static volume's root was handed to the steps' user (None: not asked, or not static).
    """

    plan: plan.Plan
    phase: str
    volume: str
    created: list[str] = field(default_factory=list)
    waited_s: float = 0.0
    note: str = ""
    prepared: prep.Prepared | None = None


def apply(
    api: client.ApiClient,
    p: plan.Plan,
    *,
    timeout: float = 120.0,
    wait: bool = True,
    prepare: prep.Settings | None = None,
) -> Result:
    """Create what ``p`` says (or find it), then wait for the claim to bind.

    Args:
        api: a ``kubernetes.client.ApiClient``.
        p: the plan (:func:`storage.plan.make`).
        timeout: seconds to wait for Bound.
        wait: wait for Bound (False: return once the objects exist).
        prepare: hand a static hostPath volume's root to ``prepare.owner`` once Bound, with one short pod
            (:func:`storage.prepare.ensure`); None: leave it as the kubelet makes it (root, 0755).

    Raises:
        InvalidRequestError: a timeout that is not positive, bad ``prepare`` settings.
        PrepareError: the pod that hands the volume over failed (the claim stays Bound; a rerun finishes).
        ConflictError: an object exists and does not match (a PV bound to another claim, another source...).
        ForbiddenError: RBAC denied a call.
        BindError: the claim did not bind; the message carries the reason from its events.
        ApiError: the API server did not answer.
    """
    if not timeout > 0:
        raise errors.InvalidRequestError(f"timeout {timeout:g} s is not positive", hint="e.g. --timeout 120")
    if prepare is not None:
        prepare.validate()
    with kube.reachable(f"provision claim {p.request.namespace}/{p.request.name}", api):
        result = _apply(api, p, timeout, wait)
    static_host_path = p.strategy == "static" and p.volume is not None and bool(p.volume.host_path)
    if prepare is not None and static_host_path and result.phase == "Bound":
        result.prepared = _prepare(api, p, result.volume, prepare)
    return result


def _prepare(api: client.ApiClient, p: plan.Plan, volume: str, settings: prep.Settings) -> prep.Prepared:
    r = p.request
    try:
        return prep.ensure(api, r.namespace, r.name, volume, settings)
    except errors.StorageError as e:
        stays = f"claim {r.namespace}/{r.name} stays Bound to {volume}: run this again once fixed"
        raise type(e)(e.message, hint=f"{e.hint}; {stays}" if e.hint else stays) from e


def _apply(api: client.ApiClient, p: plan.Plan, timeout: float, wait_for_bound: bool) -> Result:
    core = client.CoreV1Api(api)
    r = p.request
    deadline = time.monotonic() + timeout
    if p.strategy == "existing":
        return _existing(core, p)
    assert p.claim is not None
    claim = _settled_claim(api, core, r.namespace, r.name, deadline)
    if claim is not None:
        _check_matches(claim, p)  # a claim that does not fit is refused before anything is made
    created: list[str] = []
    made_pv_uid = ""
    if p.pv is None and claim is None and p.strategy != "existing":
        staticpv.free_kept(core, p)
    if p.pv is not None:
        made_pv_uid = staticpv.ensure(core, p, timeout=max(1.0, deadline - time.monotonic()))
        if made_pv_uid:
            created.append(f"PersistentVolume/{p.pv['metadata']['name']}")
        staticpv.wait_seen(core, p.pv["metadata"]["name"], timeout=min(max(1.0, deadline - time.monotonic()), 30.0))
    try:
        if claim is None and _create_claim(core, p):
            created.append(f"PersistentVolumeClaim/{r.name}")
        else:
            claim = claim or kube.read_claim(core, r.namespace, r.name)  # None: made and deleted by others meanwhile
            if claim is None:
                raise errors.ConflictError(
                    f"claim {r.namespace}/{r.name} was created and deleted by someone else meanwhile",
                    hint="run the command again",
                )
            _check_matches(claim, p)
            log.info("claim %s/%s exists and matches the plan", r.namespace, r.name)
    except errors.StorageError:
        if made_pv_uid and p.pv is not None:
            staticpv.delete_own(core, p.pv["metadata"]["name"], made_pv_uid, r.namespace, r.name)
        raise
    if not wait_for_bound:
        claim = kube.read_claim(core, r.namespace, r.name)
        phase = claim.status.phase if claim else "Pending"
        return Result(p, phase or "Pending", (claim.spec.volume_name or "") if claim else "", created)
    started = time.monotonic()
    left = max(1.0, deadline - started)
    try:
        nudge = p.pv is not None
        phase, volume, note = wait.wait_bound(api, r.namespace, r.name, timeout=left, nudge=nudge, asked=timeout)
    except errors.BindError as e:
        if "was deleted while waiting" in e.message:
            raise
        left_in_place = ", ".join(created) or f"PersistentVolumeClaim/{r.name}"
        raise errors.BindError(
            e.message,
            hint=f"{e.hint}; left in place: {left_in_place} (remove with: sharedvol release {r.name} -n {r.namespace})",
        ) from e
    return Result(p, phase, volume, created, round(time.monotonic() - started, 3), note)


def _existing(core: client.CoreV1Api, p: plan.Plan) -> Result:
    r = p.request
    name = r.existing or r.name
    existing = kube.read_claim(core, r.namespace, name)
    if existing is None:
        raise errors.NotFoundError(
            f"claim {r.namespace}/{name} does not exist",
            hint=f"provision it without --existing (sharedvol provision {name} -n {r.namespace})",
        )
    _check_rwx(existing)
    if existing.metadata.deletion_timestamp:
        raise errors.ConflictError(f"claim {r.namespace}/{name} is being deleted", hint="provision a new one")
    if existing.status.phase != "Bound":
        events = wait.claim_events(core, r.namespace, name, existing.metadata.uid)
        if events and events[-1].reason == wait.WAIT_FIRST_CONSUMER:
            return Result(p, "Pending", "", note="waits for the first pod that uses it (WaitForFirstConsumer)")
        raise errors.BindError(
            f"claim {r.namespace}/{name} exists but is {existing.status.phase}, not Bound",
            hint=f"run `sharedvol doctor -n {r.namespace}` to see why, or provision another claim",
        )
    return Result(p, existing.status.phase, existing.spec.volume_name or "")


def _settled_claim(api: client.ApiClient, core: client.CoreV1Api, namespace: str, name: str, deadline: float) -> Any:
    """The claim of that name, or None; a claim being deleted is waited for until it is gone."""
    claim = kube.read_claim(core, namespace, name)
    if claim is None or not claim.metadata.deletion_timestamp:
        return claim
    log.info("claim %s/%s is being deleted; waiting until it is gone", namespace, name)
    if not wait.wait_gone(api, namespace, name, claim.metadata.uid, timeout=max(1.0, deadline - time.monotonic())):
        raise errors.ConflictError(
            f"claim {namespace}/{name} is being deleted and still exists (a pod still uses it?)",
            hint=f"wait until the pods using it end (kubectl get pods -n {namespace}), then run this again",
        )
    return None


def _create_claim(core: client.CoreV1Api, p: plan.Plan) -> bool:
    """Create the plan's claim; False when it exists already (409: made meanwhile)."""
    r = p.request
    try:
        made = kube.call(
            core.create_namespaced_persistent_volume_claim, f"create claim {r.namespace}/{r.name}", r.namespace, p.claim
        )
    except errors.ConflictError:
        return False
    log.info("created claim %s/%s (uid %s)", r.namespace, r.name, made.metadata.uid)
    return True


def _check_rwx(claim: client.V1PersistentVolumeClaim) -> None:
    modes = claim.spec.access_modes or []
    if "ReadWriteMany" not in modes:
        raise errors.ConflictError(
            f"claim {claim.metadata.namespace}/{claim.metadata.name} exists with access modes {modes}, "
            "not ReadWriteMany",
            hint="steps on different pods need ReadWriteMany: release it (sharedvol release NAME) or pick another name",
        )


def _check_matches(claim: client.V1PersistentVolumeClaim, p: plan.Plan) -> None:
    _check_rwx(claim)
    ns, name = claim.metadata.namespace, claim.metadata.name
    have_class = claim.spec.storage_class_name or ""
    if have_class != p.storage_class:
        raise errors.ConflictError(
            f"claim {ns}/{name} exists with StorageClass {have_class!r}, not {p.storage_class!r}",
            hint=f"keep it with `sharedvol provision {name} -n {ns} --existing`, or release it first "
            f"(sharedvol release {name} -n {ns})",
        )
    if p.pv is not None and claim.spec.volume_name not in (None, p.pv["metadata"]["name"]):
        raise errors.ConflictError(
            f"claim {ns}/{name} is bound to volume {claim.spec.volume_name}, not {p.pv['metadata']['name']}",
            hint=f"keep it with `sharedvol provision {name} -n {ns} --existing`, or release it first",
        )
