"""What the provisioner makes, as pure functions: a claim's directory name, its PV, and whether a PV is ours."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from kubernetes.client import V1PersistentVolume, V1PersistentVolumeClaim

from storage import errors, ownership, specs
from storage.provisioner import features

PROVISIONER_ANNOTATIONS = ("volume.kubernetes.io/storage-provisioner", "volume.beta.kubernetes.io/storage-provisioner")
READABLE = 100  # characters of "<namespace>-<name>" kept at the front of a directory name
_UID = re.compile(r"\A[0-9a-f][0-9a-f-]{7,63}\Z")


def pv_name(claim: V1PersistentVolumeClaim) -> str:
    """The PV's name: ``pvc-<claim uid>``, as Kubernetes' own provisioners name theirs; one claim, one name."""
    return f"pvc-{claim.metadata.uid}"


def directory_name(namespace: str, name: str, uid: str) -> str:
    """The volume's directory under the base path: ``<namespace>-<name>[:100]-<sha256[:16]>-<uid[:8]>``.

    Any legal namespace (63) and claim name (253) fit: at most 100 readable characters, then a hash of the
    namespace, name and UID (so two claims never share a directory, whatever the truncation cut), then the
    UID's first block for people: at most 127 characters, under every filesystem's 255. Starts with a letter
    or digit (a namespace does), so it never meets ``.sharedvol`` or another hidden name.

    Raises:
        InvalidRequestError: a UID that is not one the API server gives.
    """
    if not _UID.match(uid or ""):
        raise errors.InvalidRequestError(f"claim {namespace}/{name}: UID {uid!r} is malformed", hint="recreate it")
    readable = f"{namespace}-{name}"[:READABLE].rstrip("-.")
    digest = hashlib.sha256(f"{namespace}/{name}/{uid}".encode()).hexdigest()[:16]
    return f"{readable}-{digest}-{uid[:8]}"


def claim_directory(claim: V1PersistentVolumeClaim) -> str:
    """:func:`directory_name` of a claim."""
    return directory_name(claim.metadata.namespace, claim.metadata.name, claim.metadata.uid)


def pv_for(claim: V1PersistentVolumeClaim, cls: features.ClassConfig, node: str, provisioner: str) -> dict[str, Any]:
    """The PV for ``claim``: hostPath under the base path on ``node``, pre-bound by ``claimRef`` with its UID.

    It copies the claim's access modes, records its request as the capacity, and carries the class's onDelete
    (``sharedvol.io/on-delete``) so a later change of the class does not change what happens to its data.
    """
    size = ((claim.spec.resources.requests or {}) if claim.spec.resources else {}).get("storage", "1Gi")
    volume = specs.StaticVolume(
        pv_name=pv_name(claim),
        claim_namespace=claim.metadata.namespace,
        claim_name=claim.metadata.name,
        size=str(size),
        storage_class=claim.spec.storage_class_name,
        host_path=f"{cls.base_path}/{claim_directory(claim)}",
        node=node,
        reclaim_policy=cls.reclaim_policy,
        claim_uid=claim.metadata.uid,
        provisioner=provisioner,
    )
    pv = specs.static_pv(volume)
    pv["spec"]["accessModes"] = list(claim.spec.access_modes or [specs.RWX])
    pv["metadata"]["annotations"][ownership.ON_DELETE] = cls.on_delete
    pv["metadata"]["annotations"][ownership.CLAIM_UID] = claim.metadata.uid
    return pv


def node_of(pv: V1PersistentVolume) -> str | None:
    """The node ``pv``'s ``spec.nodeAffinity`` pins it to, as :func:`pv_for` writes it.

    That is one term of one ``kubernetes.io/hostname In [node]`` expression; None for a PV without it or with any
    other affinity.
    """
    affinity = pv.spec.node_affinity if pv.spec else None
    terms = affinity.required.node_selector_terms if affinity and affinity.required else None
    if not terms or len(terms) != 1 or terms[0].match_fields or len(terms[0].match_expressions or []) != 1:
        return None
    (expression,) = terms[0].match_expressions
    values = expression.values or []
    if expression.key != specs.HOSTNAME_LABEL or expression.operator != "In" or len(values) != 1:
        return None
    return str(values[0])


def not_ours(pv: V1PersistentVolume, provisioner: str) -> str:
    """Why the service must not reclaim ``pv``; "" when it made it and may.

    Ours means: made by the service (:func:`storage.ownership.not_service_made`: the provisioned-by
    annotation and its own UID recorded by the service), named ``pvc-<uid>`` of the claim it was made for, a
    hostPath that is exactly the directory this service makes for that claim, under a base path it accepts. That
    claim is the one its ``sharedvol.io/claim-uid`` annotation names (a volume kept by ``release --keep-data`` and
    bound again to a new claim of the same name), or else its ``claimRef``'s.
    """
    meta, spec = pv.metadata, pv.spec
    ref = spec.claim_ref
    made = ownership.not_service_made(pv, provisioner)
    if made:
        return made
    uid = (meta.annotations or {}).get(ownership.CLAIM_UID) or (ref.uid if ref is not None else "")
    if ref is None or not uid or meta.name != f"pvc-{uid}":
        return "its name is not pvc-<uid of the claim it was made for>"
    if spec.host_path is None:
        return "it is not a hostPath volume"
    base, _sep, leaf = spec.host_path.path.rpartition("/")
    try:
        expected = directory_name(ref.namespace or "", ref.name or "", uid)
        features.base_path(base, "its base path")
    except errors.InvalidRequestError as e:
        return e.message
    if leaf != expected:
        return f"its path {spec.host_path.path} is not {base}/{expected}, the directory this service makes"
    if (meta.annotations or {}).get(ownership.ON_DELETE) not in ("delete", "archive", "retain"):
        return f"its {ownership.ON_DELETE} annotation is not delete, archive or retain"
    return ""
