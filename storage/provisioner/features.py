"""What of a claim and its StorageClass the fallback provisioner honours; everything else is refused by name.

Every field of ``PersistentVolumeClaim.spec`` and of ``StorageClass`` is either honoured or refused with an
:class:`~storage.errors.InvalidRequestError` naming it ("StorageClass X: parameters.basePath: ..."), which the
service posts as a ``ProvisioningFailed`` Event on the claim. The table in docs/fallback.md lists the same rules.

Claim (``spec``):
    storageClassName: must name a class of this provisioner (empty: refused, a claim without a class is bound
    statically). accessModes: ReadWriteOnce, ReadOnlyMany, ReadWriteMany honoured (copied to the PV);
    ReadWriteOncePod refused (a hostPath volume cannot keep a second pod out). resources.requests.storage:
    recorded as the PV's capacity, not enforced (a hostPath directory has no quota). resources.limits,
    selector, dataSource, dataSourceRef, volumeAttributesClassName, volumeMode Block: refused.
Class:
    provisioner: must be this service's. parameters: basePath, onDelete, node; any other refused.
    reclaimPolicy: Delete or Retain (Recycle refused). volumeBindingMode: Immediate or WaitForFirstConsumer.
    allowedTopologies: honoured (the node must carry one term's labels). mountOptions: refused (hostPath
    volumes take none). allowVolumeExpansion true: refused (nothing here can grow a volume).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client import V1Node, V1PersistentVolumeClaim, V1StorageClass

from storage import errors, nodes, validate
from storage.provisioner import settings as settings_mod

PARAMETERS = ("basePath", "onDelete", "node")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany")
SELECTED_NODE = "volume.kubernetes.io/selected-node"
LONGEST_BASE_PATH = validate.LONGEST_PATH
_PRINTABLE = validate.PLAIN_PATH


@dataclass(frozen=True)
class ClassConfig:
    """A ``sharedvol-hostpath``-style class's settings, once checked.

    Attributes:
        name: ``metadata.name``.
        base_path: ``parameters.basePath``: directory on the node holding the volumes. Default /var/lib/sharedvol.
        on_delete: ``parameters.onDelete``: delete, archive (rename to ``archived-<dir>``) or retain the directory
            when the claim is deleted and ``reclaimPolicy`` is Delete. Default delete.
        node: ``parameters.node``: the node for Immediate claims. Default: the first Ready node.
        reclaim_policy: ``reclaimPolicy``. Default Delete.
        binding_mode: ``volumeBindingMode``. Default Immediate.
        topology: ``allowedTopologies``: terms of (label key, allowed values); a node must match one term.
    """

    name: str = ""
    base_path: str = settings_mod.DEFAULT_BASE
    on_delete: str = "delete"
    node: str | None = None
    reclaim_policy: str = "Delete"
    binding_mode: str = "Immediate"
    topology: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...] = ()


def shown(value: object) -> str:
    """``value`` for a one-line message: as is when plain printable ASCII, else quoted; at most 60 characters."""
    text = str(value)[:60]
    return text if _PRINTABLE.match(text) else repr(text)


def base_path(value: object, where: str) -> str:
    """A class's ``basePath`` checked: a plain, printable, absolute path of its own, of bounded length.

    Raises:
        InvalidRequestError: naming ``where`` (the class and field) and what is wrong.
    """
    if not isinstance(value, str) or not _PRINTABLE.match(value) or len(value) > LONGEST_BASE_PATH:
        raise errors.InvalidRequestError(
            f"{where}: {str(value)[:80]!r} is not a plain path (printable ASCII, no spaces, at most "
            f"{LONGEST_BASE_PATH} characters)",
            hint="give an absolute directory on the node, e.g. /var/lib/sharedvol",
        )
    try:
        return validate.host_path(value)
    except errors.InvalidRequestError as e:
        raise errors.InvalidRequestError(f"{where}: {e.message}", hint=e.hint) from e


def class_config(sc: V1StorageClass, provisioner: str) -> ClassConfig:
    """The :class:`ClassConfig` of a StorageClass, every field checked.

    Raises:
        InvalidRequestError: a field the service does not honour, or a malformed one, named.
    """
    name = sc.metadata.name

    def refuse(field: str, why: str, hint: str) -> errors.InvalidRequestError:
        return errors.InvalidRequestError(f"StorageClass {name}: {field}: {why}", hint=hint)

    if sc.provisioner != provisioner:
        raise refuse("provisioner", f"{sc.provisioner!r} is not {provisioner}", "claim a class of this provisioner")
    params = dict(sc.parameters or {})
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise refuse(f"parameters.{shown(unknown[0])}", "is unknown", f"use only {', '.join(PARAMETERS)}")
    on_delete = params.get("onDelete", "delete")
    if on_delete not in settings_mod.ON_DELETE:
        raise refuse("parameters.onDelete", f"onDelete {on_delete[:60]!r} is unknown", "use delete, archive or retain")
    node = params.get("node")
    if node is not None and not validate.SUBDOMAIN.matches(node):
        raise refuse("parameters.node", f"{node[:60]!r} is not a node name", validate.SUBDOMAIN.hint)
    if (sc.reclaim_policy or "Delete") not in ("Delete", "Retain"):
        raise refuse("reclaimPolicy", f"{shown(sc.reclaim_policy)} is not supported", "use Delete or Retain")
    if (sc.volume_binding_mode or "Immediate") not in ("Immediate", "WaitForFirstConsumer"):
        raise refuse(
            "volumeBindingMode", f"{shown(sc.volume_binding_mode)} is unknown", "Immediate or WaitForFirstConsumer"
        )
    if sc.mount_options:
        raise refuse("mountOptions", "hostPath volumes take no mount options", "remove mountOptions")
    if sc.allow_volume_expansion:
        raise refuse("allowVolumeExpansion", "the fallback cannot grow a volume", "set allowVolumeExpansion: false")
    topology = tuple(
        tuple((e.key, tuple(e.values or ())) for e in (term.match_label_expressions or []))
        for term in sc.allowed_topologies or []
    )
    return ClassConfig(
        name=name,
        base_path=base_path(
            params.get("basePath", settings_mod.DEFAULT_BASE), f"StorageClass {name}: parameters.basePath"
        ),
        on_delete=on_delete,
        node=node,
        reclaim_policy=sc.reclaim_policy or "Delete",
        binding_mode=sc.volume_binding_mode or "Immediate",
        topology=topology,
    )


def check_claim(claim: V1PersistentVolumeClaim) -> None:
    """Refuse a claim asking for what the fallback does not do, naming the field.

    Raises:
        InvalidRequestError: the first field the service does not honour.
    """
    spec = claim.spec

    def refuse(field: str, why: str, hint: str) -> errors.InvalidRequestError:
        return errors.InvalidRequestError(f"claim spec.{field}: {why}", hint=hint)

    if not spec.storage_class_name:
        raise refuse("storageClassName", "is empty: such a claim binds only to a PV made for it", "name a class")
    if spec.selector is not None:
        raise refuse("selector", "a provisioned volume cannot match a label selector", "remove the selector")
    if spec.data_source is not None or spec.data_source_ref is not None:
        field = "dataSource" if spec.data_source is not None else "dataSourceRef"
        raise refuse(field, "the fallback cannot clone or restore a volume", f"remove {field}")
    if (spec.volume_mode or "Filesystem") != "Filesystem":
        raise refuse("volumeMode", f"{shown(spec.volume_mode)} is not supported (a directory)", "use Filesystem")
    if spec.volume_attributes_class_name:
        raise refuse("volumeAttributesClassName", "the fallback has no volume attributes", "remove it")
    modes = list(spec.access_modes or [])
    bad = [m for m in modes if m not in ACCESS_MODES]
    if not modes or bad:
        why = f"{shown(bad[0])} is not supported" if bad else "none given"
        raise refuse("accessModes", why, f"use {', '.join(ACCESS_MODES)} (ReadWriteOncePod needs a CSI driver)")
    resources = spec.resources
    if resources is not None and resources.limits:
        raise refuse("resources.limits", "a hostPath directory cannot be limited", "remove resources.limits")
    size = ((resources.requests or {}) if resources is not None else {}).get("storage")
    if size is not None:
        try:
            validate.quantity_bytes(str(size), what="spec.resources.requests.storage")
        except errors.InvalidRequestError as e:
            raise refuse("resources.requests.storage", e.message, e.hint) from e


def node_for(claim: V1PersistentVolumeClaim, cls: ClassConfig, all_nodes: list[V1Node]) -> str | None:
    """The node that will hold the volume; None while a WaitForFirstConsumer claim has no selected node yet.

    Raises:
        InvalidRequestError: the selected or configured node does not exist or is outside ``allowedTopologies``.
        NotFoundError: no Ready node fits.
    """
    by_name = {n.metadata.name: n for n in all_nodes}
    selected = (claim.metadata.annotations or {}).get(SELECTED_NODE)
    chosen = selected or (None if cls.binding_mode == "WaitForFirstConsumer" else cls.node)
    if chosen is None:
        if cls.binding_mode == "WaitForFirstConsumer":
            return None
        fits = [n for n in nodes.ready(all_nodes) if _fits(n, cls)]
        if not fits:
            raise errors.NotFoundError(
                "no Ready node fits the class's allowedTopologies" if cls.topology else "no Ready node holds volumes",
                hint="join a node, or set parameters.node (and allowedTopologies) to one that is Ready",
            )
        return min(fits, key=lambda n: (nodes.closed(n), n.metadata.name)).metadata.name  # open to pods first
    field = f"annotation {SELECTED_NODE}" if selected else f"StorageClass {cls.name}: parameters.node"
    node = by_name.get(chosen)
    if node is None:
        raise errors.InvalidRequestError(f"{field}: node {chosen[:80]!r} does not exist", hint="name a node")
    if not _fits(node, cls):
        raise errors.InvalidRequestError(
            f"{field}: node {chosen} is outside StorageClass {cls.name}'s allowedTopologies",
            hint="pick a node the class allows",
        )
    return chosen


def _fits(node: V1Node, cls: ClassConfig) -> bool:
    """Whether ``node``'s labels match one of the class's allowedTopologies terms (no terms: any node)."""
    labels = node.metadata.labels or {}
    return not cls.topology or any(all(labels.get(k) in values for k, values in term) for term in cls.topology)
