"""The life of one prepare pod (:mod:`storage.prepare`): its name, create, take over, delete.

Create it, or take over the one a concurrent call made; remove a stale one; delete it at the end (that
incarnation only); and the one line that RBAC or Pod Security refusals become.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from storage import errors, kube

if TYPE_CHECKING:  # kubernetes is imported lazily: `sharedvol --help` stays fast
    from kubernetes.client import CoreV1Api, V1Pod

log = logging.getLogger(__name__)

PREPARED_ANNOTATION = "sharedvol.io/prepared"  # UID:GID MODE, on the pod and, once done, on the PV
CLAIM_ANNOTATION = "sharedvol.io/claim"
COMPONENT = "app.kubernetes.io/component"
RBAC = "create, get, watch and delete pods (and list events) in namespace {ns}"


def pod_name(claim: str) -> str:
    """``sharedvol-prepare-<claim>``; over 253 characters, ``sharedvol-prepare-<sha256 of the claim, 40 hex>``."""
    name = f"sharedvol-prepare-{claim}"
    return name if len(name) <= 253 else "sharedvol-prepare-" + hashlib.sha256(claim.encode()).hexdigest()[:40]


def create_or_adopt(core: CoreV1Api, body: dict[str, Any]) -> V1Pod | None:
    """Create the pod; on a name clash take a matching pod of a concurrent call, remove a stale one (None)."""
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        made = kube.call(core.create_namespaced_pod, f"create pod {ns}/{name}", ns, body)
    except errors.ConflictError:
        pass
    except errors.ForbiddenError as e:
        raise _forbidden(e, ns) from e
    else:
        log.info("created pod %s/%s to hand the volume over", ns, name)
        return made
    try:
        there = kube.call(core.read_namespaced_pod, f"get pod {ns}/{name}", name, ns)
    except errors.NotFoundError:
        return None
    want = (body["metadata"]["annotations"][PREPARED_ANNOTATION], body["spec"]["containers"][0]["image"])
    same = ((there.metadata.annotations or {}).get(PREPARED_ANNOTATION), there.spec.containers[0].image) == want
    finished = (there.status.phase if there.status else "") in ("Succeeded", "Failed")
    if same and not finished and not there.metadata.deletion_timestamp:
        log.info("pod %s/%s of another call hands the volume over; waiting for it", ns, name)
        return there
    if not finished and not there.metadata.deletion_timestamp:
        raise errors.ConflictError(
            f"pod {ns}/{name} of another sharedvol call is handing the volume to someone else",
            hint=f"wait until it ends (kubectl get pod -n {ns} {name}), then run this again",
        )
    log.info("removing the leftover pod %s/%s (%s)", ns, name, there.status.phase if there.status else "?")
    delete(core, there)
    return None


def remove_leftover(core: CoreV1Api, namespace: str, claim: str) -> bool:
    """Delete the claim's prepare pod that a killed call left (it would keep a deleted claim Terminating).

    Best effort: False when there is none, or it cannot be read or deleted (no rights).
    """
    name = pod_name(claim)
    try:
        there = kube.call(core.read_namespaced_pod, f"get pod {namespace}/{name}", name, namespace)
        ours = (there.metadata.labels or {}).get(COMPONENT) == "prepare"
        if not ours or (there.metadata.annotations or {}).get(CLAIM_ANNOTATION) != claim:
            return False
        delete(core, there)
    except errors.StorageError as e:
        log.debug("no leftover prepare pod removed for claim %s/%s: %s", namespace, claim, e)
        return False
    log.info("deleted the leftover prepare pod %s/%s", namespace, name)
    return True


def delete(core: CoreV1Api, p: V1Pod) -> None:
    """Delete pod ``p`` now (grace 0: it only ran chown), only that incarnation (UID precondition)."""
    from kubernetes import client

    m = p.metadata
    options = client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=m.uid))
    try:
        kube.call(core.delete_namespaced_pod, f"delete pod {m.namespace}/{m.name}", m.name, m.namespace, body=options)
    except (errors.NotFoundError, errors.ConflictError):
        pass  # gone, or already another pod of that name: not ours to delete
    except errors.ForbiddenError as e:
        raise _forbidden(e, m.namespace) from e


def _forbidden(e: errors.ForbiddenError, ns: str) -> errors.ForbiddenError:
    if "PodSecurity" in e.message:
        return errors.ForbiddenError(
            f"{e.message.rstrip('.')}: namespace {ns} enforces the restricted Pod Security level, which refuses "
            "the root pod (CHOWN, FOWNER) that hands a static volume to the steps' user",
            hint=f"label it baseline (kubectl label ns {ns} pod-security.kubernetes.io/enforce=baseline --overwrite),"
            " or make the volume's directory writable for the steps' user yourself and pass --no-prepare",
        )
    return errors.ForbiddenError(
        f"{e.message}; a static volume is handed to the steps' user by a short pod, which needs the rights to "
        + RBAC.format(ns=ns),
        hint="ask a cluster admin for them (docs/storage.md), or make the volume's directory writable for the steps' "
        "user yourself and pass --no-prepare",
    )
