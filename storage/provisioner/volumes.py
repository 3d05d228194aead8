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


def not_ours(pv: Any, config: ClassConfig, settings: settings_mod.Settings) -> str:
    """Why the service must not reclaim ``pv`` (a V1PersistentVolume); "" when it made it and may.

    Ours means: annotated as provisioned by this service, labelled managed-by sharedvol, named
    ``pvc-<claimRef uid>``, a hostPath that is exactly the directory this service makes for that claim,
    and, with symlinks resolved here, strictly inside the class's base path.
    """
    meta, spec = pv.metadata, pv.spec
    ref = spec.claim_ref
    if (meta.annotations or {}).get(specs.PROVISIONED_BY) != settings.provisioner:
        return f"not annotated {specs.PROVISIONED_BY}: {settings.provisioner}"
    if (meta.labels or {}).get(specs.MANAGED_BY) != specs.MANAGER:
        return f"not labelled {specs.MANAGED_BY}: {specs.MANAGER}"
    if ref is None or not ref.uid or meta.name != f"pvc-{ref.uid}":
        return "its name is not pvc-<uid of the claim it was made for>"
    if spec.host_path is None:
        return "it is not a hostPath volume"
    expected = f"{config.base_path}/{ref.namespace}-{ref.name}-{ref.uid[:8]}"
    if spec.host_path.path != expected:
        return f"its path {spec.host_path.path} is not {expected}, the directory this service makes for its claim"
    base = os.path.realpath(settings.local_path(config.base_path))
    real = os.path.realpath(settings.local_path(spec.host_path.path))
    if os.path.dirname(real) != base:
        return f"{spec.host_path.path} resolves to {real}, outside the base path {config.base_path}"
    return ""


def make_directory(settings: settings_mod.Settings, config: ClassConfig, node_path: str) -> None:
    """Create the volume's directory, writable for the step image's user, when the base path is mounted here.

    kubelet would create it (hostPath DirectoryOrCreate) owned by root with mode 0755, which the non-root
    steps cannot write. On a node this service does not run on, kubelet's directory is what the pods get.
    A directory that resolves outside the base path (a planted symlink) is refused.

    Raises:
        InvalidRequestError: the directory would resolve outside the base path.
    """
    import logging

    from storage import errors

    local = settings.local_path(node_path)
    base = os.path.realpath(settings.local_path(config.base_path))
    if not os.path.isdir(base):
        logging.getLogger("sharedvol.provisioner").warning(
            "base path %s is not mounted here; kubelet will create %s owned by root", config.base_path, node_path
        )
        return
    if os.path.lexists(local) and os.path.dirname(os.path.realpath(local)) != base:
        raise errors.InvalidRequestError(
            f"{node_path} exists and resolves outside the base path {config.base_path}",
            hint="remove that symlink on the node",
        )
    os.makedirs(local, exist_ok=True)
    os.chmod(local, 0o777)  # any pod uid sharing the claim can write; the base directory itself stays 0755


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
