"""Watch one short pod with a deadline until it ends, cannot start, or is gone.

The pod is watched by name and matched by UID (a newer pod of that name never speaks for this one). The
end is seen in the pod's own status (phase Succeeded or Failed; a container waiting for a reason that does
not heal, such as ``ErrImagePull``) and in the Events the kubelet posts about it (``Failed``, ``BackOff``
while pulling), which are read again between short watch windows. A watch whose resourceVersion expired
(410 Gone) reads the pod again (:func:`storage.kube.follow`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storage import errors, kube

if TYPE_CHECKING:  # kubernetes is imported lazily: `sharedvol --help` stays fast
    from kubernetes.client import CoreV1Api, CoreV1Event, V1Pod

log = logging.getLogger(__name__)

# Container waiting reasons (kubelet) after which the pod will not start without a change by someone.
STUCK_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
# Event reasons the kubelet posts for the same failures (its messages name the image and the cause).
STUCK_EVENTS = ("Failed", "InspectFailed", "ErrImageNeverPull")
WINDOW_S = 2


@dataclass
class Ended:
    """How the wait ended.

    Attributes:
        outcome: ``Succeeded``, ``Failed`` (the pod's phase), ``Stuck`` (it cannot start: ``reason``),
            ``Deleted`` (gone before it ended) or ``Timeout``.
        reason: the kubelet's reason (``ErrImagePull``, ``DeadlineExceeded``, ``exit code 1``...), "" when none.
        detail: the message that goes with it (the last Event when the pod did not end), "" when none.
        phase: the pod's last phase seen ("" when it was never seen).
        node: the node the pod was bound to ("" when not scheduled).
    """

    outcome: str
    reason: str = ""
    detail: str = ""
    phase: str = ""
    node: str = ""


def wait_ended(core: CoreV1Api, namespace: str, name: str, uid: str, *, timeout: float) -> Ended:
    """Watch pod ``namespace/name`` with UID ``uid`` until it ends or ``timeout`` seconds pass.

    Raises:
        ForbiddenError: not allowed to get or watch the pod.
        ApiError: the API server stopped answering.
    """
    deadline = time.monotonic() + timeout
    pod: Any = None
    for seen, obj in kube.follow(
        core.list_namespaced_pod,
        namespace,
        name=name,
        what=f"pod {namespace}/{name}",
        kind="pods",
        deadline=deadline,
        window=WINDOW_S,
        read=lambda: _read(core, namespace, name),
    ):
        if seen == kube.LISTED:
            pod = obj
        elif seen != kube.QUIET:  # a watch event: decide now only when this pod is gone or ended
            if obj.metadata.uid != uid:
                continue
            pod = None if seen == "DELETED" else obj
            if pod is not None and _ended(pod) is None:
                continue
        if pod is None or pod.metadata.uid != uid:
            return Ended("Deleted")
        ended = _ended(pod) or _stuck_by_event(core, pod)
        if ended is not None:
            return ended
    events = pod_events(core, pod)
    last = f"{events[-1].reason}: {one_line(events[-1].message or '')}" if events else ""
    return Ended("Timeout", "", last, pod.status.phase or "", pod.spec.node_name or "")


def _read(core: CoreV1Api, namespace: str, name: str) -> V1Pod | None:
    try:
        return kube.call(core.read_namespaced_pod, f"get pod {namespace}/{name}", name, namespace)
    except errors.NotFoundError:
        return None


def _ended(pod: V1Pod) -> Ended | None:
    """The end the pod's status shows (phase, or a container stuck), or None while it may still run."""
    status = pod.status
    phase = (status.phase if status else "") or ""
    node = pod.spec.node_name or ""
    containers = (status.container_statuses or []) if status else []
    if phase in ("Succeeded", "Failed"):
        reason, detail = (status.reason or "", one_line(status.message or "")) if status else ("", "")
        for c in containers:
            done = c.state.terminated if c.state else None
            if done is not None and (done.exit_code or phase == "Failed"):
                reason = f"exit code {done.exit_code}" + (f" ({done.reason})" if done.reason else "")
                detail = one_line(done.message or "")
        return Ended(phase, reason, detail, phase, node)
    for c in containers:
        waiting = c.state.waiting if c.state else None
        if waiting is not None and waiting.reason in STUCK_REASONS:
            return Ended("Stuck", waiting.reason, one_line(waiting.message or ""), phase, node)
    return None


def _stuck_by_event(core: CoreV1Api, pod: V1Pod) -> Ended | None:
    """A kubelet Event of this pod saying it cannot start (pull failure, bad image, container error)."""
    for event in pod_events(core, pod):
        pulling = event.reason == "BackOff" and "pulling image" in (event.message or "").lower()
        if event.type == "Warning" and (event.reason in STUCK_EVENTS or pulling):
            phase = (pod.status.phase if pod.status else "") or ""
            return Ended("Stuck", event.reason, one_line(event.message or ""), phase, pod.spec.node_name or "")
    return None


def one_line(text: str, limit: int = 300) -> str:
    """``text`` (a log tail, a kubelet message) on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def pod_events(core: CoreV1Api, pod: V1Pod) -> list[CoreV1Event]:
    """The Events of ``pod`` (by UID), oldest first; [] when they cannot be read."""
    from kubernetes import client

    m = pod.metadata
    selector = f"involvedObject.kind=Pod,involvedObject.name={m.name},involvedObject.uid={m.uid}"
    try:
        items = core.list_namespaced_event(m.namespace, field_selector=selector).items
    except client.ApiException:
        return []
    return sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp or ""))
