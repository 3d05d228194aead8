"""Watch a claim with a deadline.

Until it is Bound, will never bind (its own events say so), is deleted,
or is gone (after a delete). Events are matched by the claim's UID, so an older claim of the same name
never speaks for a new one. A watch whose resourceVersion expired (410 Gone) lists again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from storage import errors, kube

log = logging.getLogger(__name__)

FATAL_EVENT_REASONS = ("ProvisioningFailed", "VolumeMismatch", "FailedBinding")
WAIT_FIRST_CONSUMER = "WaitForFirstConsumer"
NUDGE_ANNOTATION = "sharedvol.io/resync"


def claim_events(core: Any, namespace: str, name: str, uid: str | None) -> list[Any]:
    """The Events of claim ``namespace/name`` with UID ``uid`` (all of that name when ``uid`` is None), oldest first."""
    from kubernetes import client

    selector = f"involvedObject.name={name},involvedObject.kind=PersistentVolumeClaim"
    if uid:
        selector += f",involvedObject.uid={uid}"
    try:
        items = core.list_namespaced_event(namespace, field_selector=selector).items
    except client.ApiException:
        return []
    return sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""))


def wait_bound(
    api: Any, namespace: str, name: str, *, timeout: float = 120.0, nudge: bool = False
) -> tuple[str, str, str]:
    """Watch the claim until it is Bound, waits for its first consumer, or a deadline passes.

    With ``nudge`` (a claim pre-bound to a PV sharedvol made), each quiet watch window ends with a
    touch of the claim's ``sharedvol.io/resync`` annotation: the PV controller then syncs the claim
    at once instead of at its next 15-second resync.

    Returns:
        (phase, volume name, note): note says what a Pending claim waits for.

    Raises:
        BindError: an event of this claim says it will not bind, the claim was deleted, or the deadline passed.
        ApiError: the API server stopped answering.
    """
    with kube.reachable(f"watch claim {namespace}/{name}", api):
        return _wait_bound(api, namespace, name, timeout, nudge)


def _wait_bound(api: Any, namespace: str, name: str, timeout: float, nudge: bool) -> tuple[str, str, str]:
    from kubernetes import client, watch

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    selector = f"metadata.name={name}"
    listing = kube.call(core.list_namespaced_persistent_volume_claim, "list claims", namespace, field_selector=selector)
    rv = listing.metadata.resource_version
    claim = listing.items[0] if listing.items else None
    uid = claim.metadata.uid if claim is not None else None
    log.info("waiting up to %.0f s for claim %s/%s to bind", timeout, namespace, name)
    # The PV controller binds the volume side first; when the claim side then does not follow (seen about
    # half the time), only the next sync of the claim finishes it. Touch the claim as soon as the volume is
    # Bound to it, instead of after a quiet watch window.
    volume = claim.spec.volume_name if claim is not None and claim.status.phase != "Bound" else None
    if nudge and volume and _volume_bound_to(core, volume, uid or "", min(30.0, timeout)):
        _touch(core, namespace, name)
    while True:
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
        left = deadline - time.monotonic()
        if left <= 0:
            last = f"{events[-1].reason}: {events[-1].message}" if events else "no events"
            raise errors.BindError(
                f"claim {namespace}/{name} was not Bound after {timeout:.0f} s ({last})",
                hint=f"run `sharedvol doctor -n {namespace}` to see why",
            )
        w = watch.Watch()
        try:
            # Short windows: between them the claim's events are read again (and a pre-bound claim nudged).
            for event in w.stream(
                core.list_namespaced_persistent_volume_claim,
                namespace,
                field_selector=selector,
                resource_version=rv,
                timeout_seconds=max(1, min(1 if nudge else 5, int(left))),
            ):
                obj = event["object"]
                rv = obj.metadata.resource_version
                claim = None if event["type"] == "DELETED" else obj
                if claim is None or claim.status.phase == "Bound":
                    w.stop()
                    break
        except client.ApiException as e:
            if e.status != 410:  # 410 Gone: our resourceVersion expired; list again and go on watching
                raise errors.from_api(e, f"watch claim {namespace}/{name}") from e
            listing = kube.call(
                core.list_namespaced_persistent_volume_claim, "list claims", namespace, field_selector=selector
            )
            rv = listing.metadata.resource_version
            claim = listing.items[0] if listing.items else None
        if nudge and claim is not None and claim.status.phase != "Bound" and not _touch(core, namespace, name):
            claim = None


def _touch(core: Any, namespace: str, name: str) -> bool:
    """Touch the claim's ``sharedvol.io/resync`` annotation so the PV controller syncs it now; False if gone."""
    touch = {"metadata": {"annotations": {NUDGE_ANNOTATION: f"{time.time():.3f}"}}}
    try:
        kube.call(core.patch_namespaced_persistent_volume_claim, "annotate claim", name, namespace, touch)
    except errors.NotFoundError:
        return False
    return True


def _stale_binding_refusal(core: Any, claim: Any, event: Any) -> bool:
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


def _volume_bound_to(core: Any, volume: str, uid: str, timeout: float) -> bool:
    """Watch PV ``volume`` until the PV controller bound it to the claim with UID ``uid`` (deadline ``timeout``)."""

    def bound(pv: Any) -> bool:
        ref = pv.spec.claim_ref
        return pv.status.phase == "Bound" and ref is not None and ref.uid == uid

    return kube.watch_volume(core, volume, bound, timeout=timeout)


def wait_gone(api: Any, namespace: str, name: str, uid: str, *, timeout: float) -> bool:
    """Watch until claim ``namespace/name`` with UID ``uid`` no longer exists; False when the deadline passed."""
    from kubernetes import client, watch

    core = client.CoreV1Api(api)
    selector = f"metadata.name={name}"
    deadline = time.monotonic() + timeout
    with kube.reachable(f"watch claim {namespace}/{name}", api):
        listing = kube.call(
            core.list_namespaced_persistent_volume_claim, "list claims", namespace, field_selector=selector
        )
        if not any(c.metadata.uid == uid for c in listing.items):
            return True
        rv = listing.metadata.resource_version
        while (left := deadline - time.monotonic()) > 0:
            w = watch.Watch()
            try:
                for event in w.stream(
                    core.list_namespaced_persistent_volume_claim,
                    namespace,
                    field_selector=selector,
                    resource_version=rv,
                    timeout_seconds=max(1, int(left)),
                ):
                    obj = event["object"]
                    rv = obj.metadata.resource_version
                    if obj.metadata.uid == uid and event["type"] == "DELETED":
                        w.stop()
                        return True
            except client.ApiException as e:
                if e.status != 410:
                    raise errors.from_api(e, f"watch claim {namespace}/{name}") from e
                return wait_gone(api, namespace, name, uid, timeout=max(0.0, deadline - time.monotonic()))
    return False
