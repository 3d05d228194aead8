"""The volumes of finished pipeline runs: claims annotated ``sharedvol.io/pipeline`` that no running pod uses.

A failed run keeps its volume (the checkpoints stay for a retry or a resume); ``sharedvol doctor`` lists these
volumes with the command that releases each.
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


def claims_used(pods: list[Any], *, running_only: bool = False) -> set[tuple[str, str]]:
    """``(namespace, claim)`` of every claim the pods mount (only pods not yet finished, with ``running_only``)."""
    if running_only:
        pods = [p for p in pods if (p.status.phase if p.status else None) not in FINISHED_POD_PHASES]
    return {
        (pod.metadata.namespace, v.persistent_volume_claim.claim_name)
        for pod in pods
        for v in (pod.spec.volumes or [])
        if v.persistent_volume_claim
    }
