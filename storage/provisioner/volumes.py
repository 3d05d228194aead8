"""What the provisioner decides, as pure functions: the PV for a claim, and what to do with a released one."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

from storage import specs, validate
from storage.provisioner import settings as settings_mod

SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")


@dataclass(frozen=True)
class ClassConfig:
    """A ``sharedvol-hostpath``-style class's settings.

    Attributes:
        base_path: ``parameters.basePath``: directory on the node holding the volumes. Default /var/lib/sharedvol.
        on_delete: ``parameters.onDelete``: delete, archive (rename to ``archived-<dir>``) or retain the directory
            when the claim is deleted and ``reclaimPolicy`` is Delete. Default delete.
        node: ``parameters.node``: the node for Immediate claims. Default: the first Ready node.
        reclaim_policy: ``reclaimPolicy``. Default Delete.
        binding_mode: ``volumeBindingMode``. Default Immediate.
    """

    base_path: str = settings_mod.DEFAULT_BASE
    on_delete: str = "delete"
    node: str | None = None
    reclaim_policy: str = "Delete"
    binding_mode: str = "Immediate"


def class_config(sc: Any) -> ClassConfig:
    """The :class:`ClassConfig` of a V1StorageClass.

    Raises:
        InvalidRequestError: a basePath that is relative or ``/``, or an unknown onDelete.
    """
    params = dict(sc.parameters or {})
    on_delete = params.get("onDelete", "delete")
    if on_delete not in settings_mod.ON_DELETE:
        from storage import errors

        raise errors.InvalidRequestError(
            f"StorageClass {sc.metadata.name}: onDelete {on_delete!r} is unknown", hint="use delete, archive or retain"
        )
    return ClassConfig(
        base_path=validate.host_path(params.get("basePath", settings_mod.DEFAULT_BASE)),
        on_delete=on_delete,
        node=params.get("node"),
        reclaim_policy=sc.reclaim_policy or "Delete",
        binding_mode=sc.volume_binding_mode or "Immediate",
    )


def served(claim: Any, provisioner: str) -> bool:
    """Whether ``claim`` asks for ``provisioner`` (the annotation the PV controller sets)."""
    annotations = claim.metadata.annotations or {}
    return any(annotations.get(a) == provisioner for a in PROVISIONER_ANNOTATIONS)


def pv_name(claim: Any) -> str:
    """The PV's name: ``pvc-<claim uid>``, as Kubernetes' own provisioners name theirs; one claim, one name."""
    return f"pvc-{claim.metadata.uid}"


def directory(config: ClassConfig, claim: Any) -> str:
    """The node directory of a claim's volume: ``<basePath>/<namespace>-<name>-<uid[:8]>``."""
    return f"{config.base_path}/{claim.metadata.namespace}-{claim.metadata.name}-{claim.metadata.uid[:8]}"


def node_for(claim: Any, config: ClassConfig, ready_nodes: list[str]) -> str | None:
    """The node that will hold the volume; None while a WaitForFirstConsumer claim has no selected node yet."""
    selected = (claim.metadata.annotations or {}).get(SELECTED_NODE)
    if config.binding_mode == "WaitForFirstConsumer":
        return selected
    return selected or config.node or (ready_nodes[0] if ready_nodes else None)


def pv_for(claim: Any, config: ClassConfig, node: str, provisioner: str) -> dict[str, Any]:
    """The PV for ``claim``: hostPath under the base path on ``node``, pre-bound by ``claimRef`` with its UID."""
    size = ((claim.spec.resources.requests or {}) if claim.spec.resources else {}).get("storage", "1Gi")
    volume = specs.StaticVolume(
        pv_name=pv_name(claim),
        claim_namespace=claim.metadata.namespace,
        claim_name=claim.metadata.name,
        size=size,
        storage_class=claim.spec.storage_class_name or "",
        host_path=directory(config, claim),
        node=node,
        reclaim_policy=config.reclaim_policy,
        claim_uid=claim.metadata.uid,
        provisioner=provisioner,
    )
    pv = specs.static_pv(volume)
    pv["spec"]["accessModes"] = list(claim.spec.access_modes or ["ReadWriteMany"])
    return pv


def reclaim_directory(local: str, on_delete: str) -> str:
    """Apply ``on_delete`` to the directory ``local`` (as this process sees it); return what was done."""
    if not os.path.isdir(local):
        return f"{local} does not exist here: nothing to {on_delete}"
    if on_delete == "retain":
        return f"kept {local}"
    if on_delete == "archive":
        parent, name = os.path.split(local.rstrip("/"))
        target = os.path.join(parent, f"archived-{name}")
        if os.path.exists(target):
            target = f"{target}-{int(time.time())}"
        os.rename(local, target)
        return f"archived {local} as {target}"
    shutil.rmtree(local)
    return f"deleted {local}"
