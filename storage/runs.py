"""The volumes of finished pipeline runs, and deleted claims that only finished pods still hold.

The first: claims annotated ``sharedvol.io/pipeline`` that no running pod uses. A failed run keeps its volume (the
checkpoints stay for a retry or a resume); ``sharedvol doctor`` lists these volumes with the command that releases
each. The second: a claim KFP's DeletePVC deleted stays Terminating while any pod that mounted it exists, finished or
not (Kubernetes' PVC protection), and KFP keeps a run's pods until its workflow is garbage-collected
(kubeflow/pipelines#10356), so the space stays used for days; ``sharedvol doctor`` lists those claims with the pods
that hold them and the command that frees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kubernetes is imported lazily: `sharedvol --help` stays fast
    from kubernetes.client import V1PersistentVolumeClaim

PIPELINE_ANNOTATION = "sharedvol.io/pipeline"
PIPELINE = "resnet18-cifar10"
FINISHED_POD_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class LeftVolume:
    """The volume of a finished pipeline run: a claim annotated ``sharedvol.io/pipeline`` that no running pod uses.

    Attributes:
        namespace: the claim's namespace.
        name: the claim's name.
        volume: the PV it is bound to ("" when none).
        size: its ``spec.resources.requests.storage``.
        fix: the command that releases it.
    """

    namespace: str
    name: str
    volume: str
    size: str
    fix: str


def finished_run_volume(claim: V1PersistentVolumeClaim, used_by_running_pod: bool) -> LeftVolume | None:
    """The claim as a volume of a finished run, or None (not a pipeline volume, being deleted, or still in use)."""
    annotations = claim.metadata.annotations or {}
    if annotations.get(PIPELINE_ANNOTATION) != PIPELINE or used_by_running_pod or claim.metadata.deletion_timestamp:
        return None
    ns, name = claim.metadata.namespace, claim.metadata.name
    size = ((claim.spec.resources.requests or {}) if claim.spec.resources else {}).get("storage", "")
    return LeftVolume(ns, name, claim.spec.volume_name or "", size, f"sharedvol release {name} -n {ns}")


@dataclass(frozen=True)
class HeldVolume:
    """A deleted claim that only finished pods keep (Terminating): the space frees when they go.

    Attributes:
        namespace: the claim's namespace.
        name: the claim's name.
        volume: the PV it is bound to ("" when none).
        pods: the finished pods that mount it, sorted.
        fix: the command that deletes them (and so frees the claim).
    """

    namespace: str
    name: str
    volume: str
    pods: tuple[str, ...]
    fix: str


def held_by_finished_pods(claim: V1PersistentVolumeClaim, users: list[Any]) -> HeldVolume | None:
    """The deleted ``claim`` as held only by finished pods, or None (not deleted, unused, or a pod still runs).

    ``users``: the pods that mount it (:func:`pods_by_claim`).
    """
    meta = claim.metadata
    if not meta.deletion_timestamp:
        return None
    if not users or any((p.status.phase if p.status else None) not in FINISHED_POD_PHASES for p in users):
        return None
    names = tuple(sorted(p.metadata.name for p in users))
    shown = " ".join(names[:20]) + (" ..." if len(names) > 20 else "")
    fix = f"kubectl delete pod -n {meta.namespace} {shown}"
    return HeldVolume(meta.namespace, meta.name, claim.spec.volume_name or "", names, fix)


def pods_by_claim(pods: list[Any]) -> dict[tuple[str, str], list[Any]]:
    """``(namespace, claim)`` -> the pods that mount it, for every claim a pod mounts (one pass over the pods)."""
    users: dict[tuple[str, str], list[Any]] = {}
    for pod in pods:
        for key in {(pod.metadata.namespace, v.persistent_volume_claim.claim_name) for v in pod.spec.volumes or []
                    if v.persistent_volume_claim}:  # fmt: skip
            users.setdefault(key, []).append(pod)
    return users


def claims_used(pods: list[Any], *, running_only: bool = False) -> set[tuple[str, str]]:
    """``(namespace, claim)`` of every claim the pods mount (only pods not yet finished, with ``running_only``)."""
    if running_only:
        pods = [p for p in pods if (p.status.phase if p.status else None) not in FINISHED_POD_PHASES]
    return set(pods_by_claim(pods))
