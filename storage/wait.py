"""Watch a claim with a deadline.

Until it is Bound, will never bind (its own events say so), is deleted,
or is gone (after a delete). Events are matched by the claim's UID, so an older claim of the same name
never speaks for a new one. A watch whose resourceVersion expired (410 Gone) lists again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes import client

from storage import errors, kube

log = logging.getLogger(__name__)

FATAL_EVENT_REASONS = ("ProvisioningFailed", "VolumeMismatch", "FailedBinding")
WAIT_FIRST_CONSUMER = "WaitForFirstConsumer"
NUDGE_ANNOTATION = "sharedvol.io/resync"


def claim_events(core: client.CoreV1Api, namespace: str, name: str, uid: str | None) -> list[Any]:
    """The Events of claim ``namespace/name`` with UID ``uid`` (all of that name when ``uid`` is None), oldest first."""
    selector = f"involvedObject.name={name},involvedObject.kind=PersistentVolumeClaim"
    if uid:
        selector += f",involvedObject.uid={uid}"
    try:
        items = core.list_namespaced_event(namespace, field_selector=selector).items
    except client.ApiException:
        return []
    return sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""))


def wait_bound(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    timeout: float = 120.0,
    nudge: bool = False,
    asked: float | None = None,
) -> tuple[str, str, str]:
    """Watch the claim until it is Bound, waits for its first consumer, or a deadline passes.

    With ``nudge`` (a claim pre-bound to a PV sharedvol made), each quiet watch window ends with a
    touch of the claim's ``sharedvol.io/resync`` annotation: the PV controller then syncs the claim
    at once instead of at its next 15-second resync. ``asked`` is the caller's whole timeout, when ``timeout``
    is what is left of it: the message of a missed deadline names the time the user asked for.

    Returns:
        (phase, volume name, note): note says what a Pending claim waits for.

    Raises:
        BindError: an event of this claim says it will not bind, the claim was deleted, or the deadline passed.
        ApiError: the API server stopped answering.
    """
    with kube.reachable(f"watch claim {namespace}/{name}", api):
        return _wait_bound(api, namespace, name, timeout, nudge, timeout if asked is None else asked)


def _wait_bound(
    api: client.ApiClient, namespace: str, name: str, timeout: float, nudge: bool, asked: float
) -> tuple[str, str, str]:
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    log.info("waiting up to %.0f s for claim %s/%s to bind", timeout, namespace, name)
    claim: client.V1PersistentVolumeClaim = None
    uid: str | None = None
    first, claims, what = True, core.list_namespaced_persistent_volume_claim, f"claim {namespace}/{name}"
    # Short watch windows: between them the claim's events are read again (and a pre-bound claim nudged).
    window = 1 if nudge else 5
    for seen, obj in kube.follow(
        claims, namespace, name=name, what=what, kind="claims", deadline=deadline, window=window
    ):
        if seen not in (kube.LISTED, kube.QUIET):  # a watch event: decide now only when it is Bound or gone
            claim = None if seen == "DELETED" else obj
            if claim is not None and claim.status.phase != "Bound":
                continue
        elif first:
            first, claim = False, obj
            uid = claim.metadata.uid if claim is not None else None
            # The PV controller binds the volume side first; when the claim side then does not follow (seen
            # about half the time), only the next sync of the claim finishes it. Touch the claim as soon as the
            # volume is Bound to it, instead of after a quiet watch window.
            volume = claim.spec.volume_name if claim is not None and claim.status.phase != "Bound" else None
            if nudge and volume and _volume_bound_to(core, volume, uid or "", (namespace, name), min(30.0, timeout)):
                _touch(core, namespace, name)
        else:
            claim = obj if seen == kube.LISTED else claim
            if nudge and claim is not None and claim.status.phase != "Bound" and not _touch(core, namespace, name):
                claim = None
        settled = _settled(core, namespace, name, claim, uid)
        if settled is not None:
            return settled
    events = claim_events(core, namespace, name, uid)
    last = f"{events[-1].reason}: {events[-1].message}" if events else "no events"
    raise errors.BindError(
        f"claim {namespace}/{name} was not Bound after {asked:g} s ({last})",
        hint=f"run `sharedvol doctor -n {namespace}` to see why",
    )


def _settled(
    core: client.CoreV1Api, namespace: str, name: str, claim: client.V1PersistentVolumeClaim, uid: str | None
) -> tuple[str, str, str] | None:
    """How the wait ends as the claim stands: Bound, or Pending for its first consumer; None while it may bind.

    Raises:
        BindError: the claim was deleted, or one of its events says it will not bind.
    """
    if claim is None or (uid and claim.metadata.uid != uid):
        raise errors.BindError(
            f"claim {namespace}/{name} was deleted while waiting for it to bind",
            hint=f"someone or something deleted it: provision it again (sharedvol provision {name} -n {namespace})",
        )
    if claim.status.phase == "Bound":
        log.info("claim %s/%s is Bound to %s", namespace, name, claim.spec.volume_name)
        return "Bound", claim.spec.volume_name or "", ""
    events = claim_events(core, namespace, name, uid)
    for event in events:
        if event.reason in FATAL_EVENT_REASONS and not _stale_binding_refusal(core, claim, event):
            raise errors.BindError(
                f"claim {namespace}/{name} will not bind: {event.reason}: {event.message}",
                hint=f"run `sharedvol doctor -n {namespace}` for the fix",
            )
    if events and events[-1].reason == WAIT_FIRST_CONSUMER:
        return "Pending", "", "waits for the first pod that uses it (WaitForFirstConsumer)"
    return None


def _touch(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    """Touch the claim's ``sharedvol.io/resync`` annotation so the PV controller syncs it now; False if gone."""
    touch = {"metadata": {"annotations": {NUDGE_ANNOTATION: f"{time.time():.3f}"}}}
    try:
        kube.call(core.patch_namespaced_persistent_volume_claim, "annotate claim", name, namespace, touch)
    except errors.NotFoundError:
        return False
    return True


def _stale_binding_refusal(
    core: client.CoreV1Api, claim: client.V1PersistentVolumeClaim, event: client.CoreV1Event
) -> bool:
    """Whether a FailedBinding event of a pre-bound claim is stale: the live volume is reserved for this claim.

    After ``release --keep-data`` the PV controller may still hold the volume's old claimRef (the old claim's UID)
    in its cache: it says "already bound to a different claim", then binds once it sees the update.
    """
    if event.reason != "FailedBinding" or not claim.spec.volume_name:
        return False
    try:
        pv = kube.call(core.read_persistent_volume, "read PersistentVolume", claim.spec.volume_name)
    except errors.NotFoundError:
        return False
    ref = pv.spec.claim_ref
    if ref is None:
        return True
    mine = (ref.namespace, ref.name) == (claim.metadata.namespace, claim.metadata.name)
    return mine and ref.uid in (None, "", claim.metadata.uid)


def _volume_bound_to(core: client.CoreV1Api, volume: str, uid: str, claim: tuple[str, str], timeout: float) -> bool:
    """Watch PV ``volume`` until the PV controller bound it to the claim with UID ``uid`` (deadline ``timeout``).

    False at once when the volume is reserved for another claim (``claim`` is (namespace, name)): it will not bind
    to this one, and the claim's own FailedBinding event says so.
    """
    bound_here = False

    def decided(pv: client.V1PersistentVolume) -> bool:
        nonlocal bound_here
        ref = pv.spec.claim_ref
        bound_here = pv.status.phase == "Bound" and ref is not None and ref.uid == uid
        other = ref is not None and ((ref.namespace, ref.name) != claim or bool(ref.uid and ref.uid != uid))
        return bound_here or other

    return kube.watch_volume(core, volume, decided, timeout=timeout) and bound_here


def wait_gone(api: client.ApiClient, namespace: str, name: str, uid: str, *, timeout: float) -> bool:
    """Watch until claim ``namespace/name`` with UID ``uid`` no longer exists; False when the deadline passed."""
    core = client.CoreV1Api(api)
    what = f"claim {namespace}/{name}"
    with kube.reachable(f"watch {what}", api):
        list_claims = core.list_namespaced_persistent_volume_claim
        return kube.wait_gone(list_claims, namespace, name=name, uid=uid, what=what, kind="claims", timeout=timeout)
