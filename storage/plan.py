"""The storage plan: which RWX strategy a claim gets, as data that explains itself before anything is made.

Strategies (docs/storage.md): ``dynamic`` (a class whose provisioner serves RWX), ``static`` (a PV made by
sharedvol, pre-bound to the claim: hostPath on one node, or an NFS export), ``existing`` (a claim the user
names). Choice order: explicit flag, then detection: ``sharedvol-nfs`` unless :mod:`storage.nfshealth` finds
it broken, any other RWX class (the default first), ``sharedvol-hostpath`` when its provisioner runs, else the
static fallback.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from storage import classes, errors, heartbeat, hints, kube, nfshealth, specs, validate
from storage import nodes as nodes_mod

DEFAULT_BASE = "/var/lib/sharedvol"


@dataclass(frozen=True)
class Request:
    """What the user asks for.

    Attributes:
        name: the claim's name.
        namespace: the claim's namespace. Default ``default``.
        size: the claim's request, a Kubernetes quantity. Default 20Gi.
        storage_class: use this class (dynamic); None: detect.
        static: make a static hostPath PV (the local-path fallback) even if an RWX class exists.
        host_path_base: base directory on the node for static hostPath volumes. Default /var/lib/sharedvol.
        node: the node that holds a static hostPath volume; None: the only Ready node, or the first.
        nfs: ``SERVER:/PATH``: make a static PV on this NFS export instead of hostPath.
        existing: use this existing claim; nothing is made.
        fallback_running: whether the sharedvol-hostpath provisioner is installed (None: do not consider it).
        nfs_health: what :func:`storage.nfshealth.check` found of StorageClass sharedvol-nfs (None: not checked).
            Known broken (``working`` False): auto detection passes it over as if it were absent.
    """

    name: str
    namespace: str = "default"
    size: str = "20Gi"
    storage_class: str | None = None
    static: bool = False
    host_path_base: str = DEFAULT_BASE
    node: str | None = None
    nfs: str | None = None
    existing: str | None = None
    fallback_running: bool | None = None
    nfs_health: nfshealth.Health | None = None

    def validate(self) -> None:
        """Check every field that can be checked without the cluster.

        Raises:
            InvalidRequestError: naming the field and the fix.
        """
        validate.name(self.existing or self.name, "claim name")
        validate.namespace(self.namespace)
        validate.quantity_bytes(self.size)
        if self.storage_class is not None:
            validate.name(self.storage_class, "StorageClass")
        validate.host_path(self.host_path_base)
        if self.nfs is not None:
            validate.nfs_export(self.nfs)
        if self.node is not None:
            validate.name(self.node, "node")
        chosen = [bool(self.storage_class), self.static, bool(self.nfs), bool(self.existing)]
        if sum(chosen) > 1:
            raise errors.InvalidRequestError(
                "--class, --static, --nfs and --existing exclude each other", hint="pick one strategy, or none for auto"
            )


@dataclass
class Plan:
    """What sharedvol will do; printed before anything is created.

    Attributes:
        strategy: ``dynamic``, ``static`` or ``existing``.
        request: what was asked.
        storage_class: the class the claim will carry ("" for static binding).
        claim: the claim to create (None for ``existing``).
        pv: the PV to create first (``static`` only).
        volume: the static volume's description (``static`` only).
        reasons: why this strategy, one line each, including the classes considered.
    """

    strategy: str
    request: Request
    storage_class: str
    claim: dict[str, Any] | None = None
    pv: dict[str, Any] | None = None
    volume: specs.StaticVolume | None = None
    reasons: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The plan for people: strategy, objects, reasons."""
        r = self.request
        lines = [f"plan for claim {r.namespace}/{r.existing or r.name}: {self.strategy}"]
        if self.strategy == "dynamic":
            lines.append(f"  create claim {r.name} ({r.size}, ReadWriteMany) of StorageClass {self.storage_class}")
        elif self.strategy == "static" and self.volume:
            lines.append(
                f"  create PersistentVolume {self.volume.pv_name} ({r.size}, ReadWriteMany, Retain) at "
                f"{self.volume.data_location}, pre-bound to {r.namespace}/{r.name}"
            )
            lines.append(f"  create claim {r.name} bound to it (storageClassName {self.storage_class!r})")
        else:
            lines.append(f"  use the existing claim {r.existing}; create nothing")
        lines += [f"  why: {reason}" for reason in self.reasons]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-able data."""
        return {
            "strategy": self.strategy,
            "namespace": self.request.namespace,
            "claim": self.request.existing or self.request.name,
            "storage_class": self.storage_class,
            "pv": self.pv,
            "claim_spec": self.claim,
            "reasons": self.reasons,
        }


def choose(req: Request, infos: list[classes.ClassInfo], nodes: list[str]) -> Plan:
    """The plan for ``req`` given the cluster's classes and Ready nodes (pure: no API calls).

    Raises:
        InvalidRequestError: a named class that cannot serve RWX.
        NotFoundError: a named class or node that does not exist.
    """
    req.validate()
    by_name = {c.name: c for c in infos}
    broken = _nfs_broken(req)
    considered = ", ".join(_considered(c, req.fallback_running, bool(broken)) for c in infos) or "none"
    if req.existing:
        return Plan("existing", req, "", reasons=[f"--existing {req.existing} was given"])
    if req.nfs:
        server, path = validate.nfs_export(req.nfs)
        vol = specs.StaticVolume(
            pv_name=specs.static_pv_name(req.namespace, req.name),
            claim_namespace=req.namespace,
            claim_name=req.name,
            size=req.size,
            nfs_server=server,
            nfs_path=path,
            mount_options=("nfsvers=4.1",),
        )
        return _static(req, vol, [f"--nfs {req.nfs} was given: a static PV on that export"])
    if req.storage_class:
        info = by_name.get(req.storage_class)
        if info is None:
            raise errors.NotFoundError(
                f"StorageClass {req.storage_class!r} does not exist (classes: {', '.join(by_name) or 'none'})",
                hint=f"install one ({hints.INSTALL['nfs']} makes sharedvol-nfs), or use --static",
            )
        if info.rwx == "no":
            raise errors.InvalidRequestError(
                f"StorageClass {info.name} ({info.provisioner}) cannot serve ReadWriteMany: {info.reason}",
                hint=f"use --static for a pre-bound hostPath PV, or install NFS: {hints.INSTALL['nfs']}",
            )
        if info.provisioner == classes.FALLBACK_PROVISIONER and req.fallback_running is False:
            raise errors.NotFoundError(
                f"StorageClass {info.name} exists but its provisioner (`sharedvol serve`) is not running "
                "(no fresh heartbeat Lease, no ready Deployment in sharedvol-system): its claims would stay Pending",
                hint=f"{hints.INSTALL['fallback']}, then check: kubectl -n sharedvol-system get pods,lease",
            )
        reasons = [f"--class {info.name} was given ({info.reason})"]
        if info.rwx == "unknown":
            reasons.append(f"warning: {info.reason}")
        if info.name == classes.NFS_CLASS and broken:
            reasons.append(f"warning: {broken}; its claims may stay Pending until that is fixed")
        return _dynamic(req, info.name, reasons)
    if not req.static:
        passed = [broken] if broken else []  # a broken sharedvol-nfs is passed over as if absent, saying why
        usable = [c for c in infos if not (broken and c.name == classes.NFS_CLASS)]
        rwx = [c for c in usable if c.rwx == "yes" and c.provisioner != classes.FALLBACK_PROVISIONER]
        nfs = by_name.get(classes.NFS_CLASS)
        if nfs is not None and nfs.rwx == "yes" and not broken:
            return _dynamic(req, nfs.name, [f"StorageClass {nfs.name} is installed ({nfs.reason})"])
        if rwx:
            best = rwx[0]  # default class first
            return _dynamic(req, best.name, [*passed, f"StorageClass {best.name} serves RWX ({best.reason})"])
        fallback = by_name.get(classes.FALLBACK_CLASS)
        if fallback is not None and req.fallback_running is not False:
            return _dynamic(
                req,
                fallback.name,
                [*passed, f"no NFS-like class; StorageClass {fallback.name} (sharedvol serve) is installed"],
            )
    node = _node(req, nodes)
    vol = specs.StaticVolume(
        pv_name=specs.static_pv_name(req.namespace, req.name),
        claim_namespace=req.namespace,
        claim_name=req.name,
        size=req.size,
        host_path=f"{validate.host_path(req.host_path_base)}/{req.namespace}/{req.name}",
        node=node,
    )
    why = "--static was given" if req.static else f"no class can serve ReadWriteMany now (considered: {considered})"
    passed = [broken] if broken and not req.static else []
    return _static(req, vol, [*passed, why, f"hostPath on node {node}: every pod using the claim runs there"])


def _nfs_broken(req: Request) -> str:
    """Why StorageClass sharedvol-nfs is known not to work (one reasons line), or "" (working, or not known)."""
    health = req.nfs_health
    if health is None or health.working is not False:
        return ""
    return f"{classes.NFS_CLASS} is installed but not working: {'; '.join(health.problems)}"


def _considered(c: classes.ClassInfo, fallback_running: bool | None, nfs_broken: bool) -> str:
    """One class as the plan weighed it, for the reasons line."""
    if c.provisioner == classes.FALLBACK_PROVISIONER and fallback_running is False:
        return f"{c.name} ({c.provisioner}: RWX {c.rwx}, but its provisioner is not running)"
    if c.name == classes.NFS_CLASS and nfs_broken:
        return f"{c.name} ({c.provisioner}: RWX {c.rwx}, but not working)"
    return f"{c.name} ({c.provisioner}: RWX {c.rwx})"


def _node(req: Request, nodes: list[str]) -> str:
    if req.node:
        if nodes and req.node not in nodes:
            raise errors.NotFoundError(
                f"node {req.node!r} does not exist or is not Ready (Ready nodes: {', '.join(nodes) or 'none'})",
                hint="pass --node with one of them (kubectl get nodes)",
            )
        return req.node
    if not nodes:
        raise errors.NotFoundError(
            "no Ready node to hold a static hostPath volume", hint="join a node, or name an NFS export with --nfs"
        )
    return nodes[0]


def _dynamic(req: Request, storage_class: str, reasons: list[str]) -> Plan:
    claim = specs.rwx_claim(req.name, req.namespace, req.size, storage_class)
    return Plan("dynamic", req, storage_class, claim=claim, reasons=reasons)


def _static(req: Request, vol: specs.StaticVolume, reasons: list[str]) -> Plan:
    claim = specs.rwx_claim(req.name, req.namespace, req.size, vol.storage_class, volume_name=vol.pv_name)
    return Plan("static", req, vol.storage_class, claim=claim, pv=specs.static_pv(vol), volume=vol, reasons=reasons)


def ready_nodes(api: client.ApiClient) -> list[str]:
    """Names of the Ready nodes, those open to new pods first (see :func:`storage.nodes.ready_nodes`)."""
    return nodes_mod.ready_nodes(api)


def make(api: client.ApiClient, req: Request) -> Plan:
    """The plan for ``req`` on the cluster behind ``api``.

    Raises:
        InvalidRequestError, NotFoundError, ForbiddenError: see :func:`choose`; also a namespace that does not exist.
    """
    req.validate()
    try:
        client.CoreV1Api(api).read_namespace(req.namespace)
    except client.ApiException as e:
        if e.status == 404:
            raise errors.NotFoundError(
                f"namespace {req.namespace!r} does not exist",
                hint=f"create it: kubectl create namespace {req.namespace}",
            ) from e
        if e.status != 403:  # may read claims in it without reading the namespace itself
            raise errors.from_api(e, f"read namespace {req.namespace}") from e
    infos = classes.inspect(api)
    req = with_cluster_facts(api, req, infos)
    needs_nodes = not (req.existing or req.nfs or req.storage_class)
    return choose(req, infos, ready_nodes(api) if needs_nodes else [])


def with_cluster_facts(api: client.ApiClient, req: Request, infos: list[classes.ClassInfo]) -> Request:
    """``req`` with the cluster facts :func:`choose` weighs that it was not given.

    ``fallback_running`` when a class of the fallback provisioner exists; ``nfs_health``
    (:func:`storage.nfshealth.check`) when StorageClass sharedvol-nfs exists and may be chosen (auto, or named).
    """
    if req.fallback_running is None and any(c.provisioner == classes.FALLBACK_PROVISIONER for c in infos):
        req = dataclasses.replace(req, fallback_running=heartbeat.fallback_running(api))
    nfs = next((c for c in infos if c.name == classes.NFS_CLASS), None)
    auto = not (req.existing or req.nfs or req.static or req.storage_class)
    if req.nfs_health is None and nfs is not None and (auto or req.storage_class == nfs.name):
        req = dataclasses.replace(req, nfs_health=nfshealth.check(api, nfs.provisioner, nfs.parameters))
    return req


def auto_class(api: client.ApiClient) -> tuple[str | None, list[str]]:
    """The RWX StorageClass ``--storage auto`` gives a pipeline, with the reasons; None when no class serves RWX.

    The same choice as :func:`make` (``sharedvol-nfs``, any RWX class, ``sharedvol-hostpath`` when its
    provisioner runs), without the static fallback, which a compiled pipeline cannot make.

    Raises:
        StorageError: the classes cannot be listed.
    """
    with kube.reachable("choose a StorageClass for --storage auto", api):
        infos = classes.inspect(api)
        req = with_cluster_facts(api, Request(name="kfp-run"), infos)
    chosen = choose(req, infos, ["any"])
    if chosen.strategy != "dynamic":
        return None, chosen.reasons
    return chosen.storage_class, chosen.reasons
