"""Whether StorageClass ``sharedvol-nfs`` looks working: what ``kubectl apply -k k8s/nfs`` installs, checked.

Each check is a GET or a bounded list: the CSIDriver ``nfs.csi.k8s.io``; a Ready pod of the CSI controller
Deployment and of the node plugin DaemonSet (by name, in any namespace); when ``parameters.server`` names a Service
(``<svc>.<ns>.svc[.cluster.local]``), a ready endpoint of it and of cluster DNS (Services labelled ``k8s-app=kube-dns``
in kube-system). A server outside the cluster, and DNS no such Service stands for, are not checked. What these
credentials may not read is ``unknown``, never a problem. Everything read is untrusted: typed, checked, bounded.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kubernetes import client

from storage import hints, validate

DRIVER = "nfs.csi.k8s.io"
NAMESPACE = "sharedvol-nfs"  # where k8s/nfs installs the driver and the server
CONTROLLER = "csi-nfs-controller"
NODE_PLUGIN = "csi-nfs-node"
DNS_NAMESPACE = "kube-system"
DNS_LABEL = "k8s-app=kube-dns"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MAX_SLICES = 16  # EndpointSlices read per Service (a Service of one server has one)
MAX_WORKLOADS = 4  # Deployments or DaemonSets of one of the driver's names read (an install has one)
MAX_DNS = 4  # Services labelled k8s-app=kube-dns read in kube-system (clusters have one)
MAX_BYTES = 1 << 20  # of a list of EndpointSlices read as JSON (MAX_SLICES slices of a few endpoints)
SHOWN = 80  # characters of a value read from the cluster that a message shows
PLAIN = re.compile(r"[A-Za-z0-9._/:-]*")  # a value shown unquoted: names, provisioners, addresses


@dataclass(frozen=True)
class Server:
    """The class's ``parameters.server``.

    ``kind``: ``cluster`` (a Service's name: ``service``, ``namespace``), ``external`` (an IP address or another host
    name), ``missing`` or ``invalid``; ``host``: as written, lowercased (shortened and quoted when invalid).
    """

    kind: Literal["cluster", "external", "missing", "invalid"]
    host: str = ""
    service: str = ""
    namespace: str = ""


@dataclass
class Health:
    """What the checks found (doctor's ``nfs_health``, with ``working``).

    Attributes:
        problems: why sharedvol-nfs will not work, one short phrase each with the command that shows more.
        unknown: what these credentials could not read (no permission, or an API error).
        not_checked: what doctor does not check from here (an external server, DNS not found by its usual label).
    """

    problems: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def working(self) -> bool | None:
        """False: a problem found; None: none found but something could not be read; True: every check passed."""
        return False if self.problems else (None if self.unknown else True)

    def to_json(self) -> dict[str, Any]:
        """The findings as JSON-able data."""
        return {"working": self.working, **asdict(self)}


def server_of(parameters: Mapping[str, str]) -> Server:
    """Where ``parameters.server`` points: a Service of the cluster, a host outside it, or nothing usable (pure)."""
    raw = parameters.get("server")
    if not isinstance(raw, str) or not raw.strip():
        return Server("missing")
    host = raw.strip().lower().rstrip(".")
    if len(host) > validate.SUBDOMAIN.longest:
        return Server("invalid", shown(host))
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return Server("external", str(ipaddress.ip_address(host)))
    except ValueError:
        pass
    if not validate.is_subdomain(host):
        return Server("invalid", shown(host))
    labels = host.split(".")
    if labels[2:] in (["svc"], ["svc", "cluster", "local"]) and all(map(validate.is_label, labels[:2])):
        return Server("cluster", host, labels[0], labels[1])
    return Server("external", host)


def shown(value: str) -> str:
    """``value`` read from the cluster, fit for one line: at most SHOWN characters, quoted unless plain (a name)."""
    short = value[:SHOWN] + ("..." if len(value) > SHOWN else "")
    return short if PLAIN.fullmatch(short) else repr(short)


def check(api: client.ApiClient, provisioner: str, parameters: Mapping[str, str]) -> Health:
    """Check the NFS path of a class of ``provisioner`` with ``parameters`` (StorageClass sharedvol-nfs).

    ``ApiException`` never escapes: a 404 is a problem (for cluster DNS: not checked), any other status unknown.
    """
    if provisioner != DRIVER:
        return Health(not_checked=[f"its provisioner {shown(provisioner)} is not {DRIVER}, which doctor checks"])
    found = Health()
    storage, apps, core = client.StorageV1Api(api), client.AppsV1Api(api), client.CoreV1Api(api)
    if _read(found, f"CSIDriver {DRIVER}", storage.read_csi_driver, DRIVER) is MISSING:
        found.problems.append(f"the CSIDriver {DRIVER} is missing ({hints.INSTALL['nfs']})")
    for role, kind, name, list_all in (
        ("the CSI controller", "Deployment", CONTROLLER, apps.list_deployment_for_all_namespaces),
        ("the CSI node plugin", "DaemonSet", NODE_PLUGIN, apps.list_daemon_set_for_all_namespaces),
    ):
        _check_workload(found, role, kind, name, list_all)
    server = server_of(parameters)
    if server.kind == "missing":
        found.problems.append(f"the class names no NFS server (parameters.server; {hints.INSTALL['nfs']})")
    elif server.kind == "invalid":
        found.problems.append(f"parameters.server {server.host} is not a host name or an IP address")
    elif server.kind == "external":
        found.not_checked.append(f"the NFS server {server.host} is outside the cluster: not checked from here")
    else:
        _check_server(core, server, found)
        _check_dns(core, server, found)
    return found


MISSING: Any = object()  # what _read returns for a 404


def _read(found: Health, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``; MISSING on 404; None on any other failure, noted in ``found.unknown``."""
    try:
        return call(*args, **kwargs)
    except client.ApiException as e:
        if e.status == 404:
            return MISSING
        found.unknown.append(
            f"{'not allowed to read' if e.status in (401, 403) else f'HTTP {e.status} reading'} {what}"
        )
    except (ValueError, TypeError, AttributeError, RecursionError) as e:  # the client's model refused the answer
        found.unknown.append(f"could not read {what} ({shown(str(e))})")
    return None


def ready_count(value: Any) -> int:
    """A count read from a status field (``readyReplicas``, ``numberReady``): 0 when unset or not a count."""
    return value if isinstance(value, int) and value > 0 else 0


def has_ready_endpoint(slices: Any) -> bool:
    """Whether EndpointSlices, as JSON (``items`` of a list), have an endpoint with an address that is ready.

    An unset ``conditions.ready`` counts as ready (the API's rule). Anything not shaped like a slice counts as none.
    """
    for eps in slices[:MAX_SLICES] if isinstance(slices, list) else []:
        endpoints = eps.get("endpoints") if isinstance(eps, dict) else None
        for ep in [e for e in endpoints if isinstance(e, dict)] if isinstance(endpoints, list) else []:
            conditions = ep.get("conditions")
            ready = conditions.get("ready") if isinstance(conditions, dict) else None
            if isinstance(ep.get("addresses"), list) and ep["addresses"] and ready is not False:
                return True
    return False


def _check_workload(found: Health, role: str, kind: str, name: str, list_all: Callable[..., Any]) -> None:
    """The driver's Deployment or DaemonSet ``name`` in any namespace, not being deleted, with a Ready pod.

    k8s/nfs puts it in sharedvol-nfs; a csi-driver-nfs installed before (docs/nfs.md) often in kube-system.
    """
    what = f"{role} ({kind} {name})"
    listed = _read(found, what, list_all, field_selector=f"metadata.name={name}", limit=MAX_WORKLOADS)
    if listed is None:
        return
    listed_items = getattr(listed, "items", None)
    items = [
        w
        for w in (listed_items if isinstance(listed_items, list) else [])[:MAX_WORKLOADS]
        if getattr(w, "metadata", None) is not None and not w.metadata.deletion_timestamp
    ]
    statuses = [getattr(w, "status", None) for w in items]
    if not items:
        found.problems.append(f"{what} is missing ({hints.INSTALL['nfs']})")
    elif not any(ready_count(getattr(s, "ready_replicas", getattr(s, "number_ready", 0))) for s in statuses):
        ns = shown(items[0].metadata.namespace or "")
        command = f"kubectl -n {ns} describe {kind.lower()} {name}"
        found.problems.append(f"{role} ({kind} {ns}/{name}) has no Ready pod ({command})")


def _endpoints_ready(core: client.CoreV1Api, namespace: str, service: str, found: Health) -> bool | None:
    """Whether Service ``namespace/service`` has a ready endpoint; None when its EndpointSlices cannot be read.

    Read as JSON, at most MAX_BYTES: the client's model refuses a slice without endpoints, a down server's.
    """
    discovery = client.DiscoveryV1Api(core.api_client)
    what = f"the EndpointSlices of Service {namespace}/{service}"
    selector = f"{SERVICE_NAME_LABEL}={service}"
    list_slices = discovery.list_namespaced_endpoint_slice
    resp = _read(found, what, list_slices, namespace, label_selector=selector, limit=MAX_SLICES, _preload_content=False)
    if resp is None or resp is MISSING:
        return None if resp is None else False
    try:
        body = resp.read(MAX_BYTES + 1)
    finally:
        resp.release_conn()
    try:
        listed = json.loads(body) if len(body) <= MAX_BYTES else None
    except (ValueError, RecursionError):
        listed = None
    if not isinstance(listed, dict):
        found.unknown.append(f"could not read {what}: not a JSON object of at most {MAX_BYTES} bytes")
        return None
    return has_ready_endpoint(listed.get("items"))


def _check_server(core: client.CoreV1Api, server: Server, found: Health) -> None:
    what = f"the NFS server's Service {server.namespace}/{server.service}"
    svc = _read(found, what, core.read_namespaced_service, server.service, server.namespace)
    if svc is MISSING:
        found.problems.append(f"{what} (parameters.server) is missing (kubectl -n {server.namespace} get svc,pods)")
    elif svc is not None and getattr(svc.spec, "type", None) == "ExternalName":
        found.not_checked.append(f"{what} is an ExternalName: the server it names is not checked from here")
    elif svc is not None and _endpoints_ready(core, server.namespace, server.service, found) is False:
        found.problems.append(
            f"the NFS server is down: {what} has no ready endpoint "
            f"(kubectl -n {server.namespace} get pods,endpointslices -l {SERVICE_NAME_LABEL}={server.service})"
        )


def _check_dns(core: client.CoreV1Api, server: Server, found: Health) -> None:
    what = f"the cluster DNS Services ({DNS_LABEL} in {DNS_NAMESPACE})"
    listed = _read(found, what, core.list_namespaced_service, DNS_NAMESPACE, label_selector=DNS_LABEL, limit=MAX_DNS)
    if listed is None:
        return
    names = [n for s in getattr(listed, "items", None) or [] if validate.is_label(n := getattr(s.metadata, "name", ""))]
    if not names:
        found.not_checked.append(
            f"cluster DNS: no Service labelled {DNS_LABEL} in {DNS_NAMESPACE}, so whether nodes resolve "
            f"{server.host} is not checked"
        )
        return
    ready = [_endpoints_ready(core, DNS_NAMESPACE, name, found) for name in names]
    if not any(ready) and None not in ready:
        found.problems.append(
            f"cluster DNS (Service {DNS_NAMESPACE}/{names[0]}) has no ready endpoint, so nodes cannot resolve "
            f"{server.host} (kubectl -n {DNS_NAMESPACE} get pods -l {DNS_LABEL})"
        )
