"""Kubernetes objects for tests: builders of StorageClasses and claims, the cluster-scoped objects a test made, and
a working sharedvol-nfs (:func:`nfs_installed`).

The builders return plain dicts, the bodies the API takes; names are made unique where a class is cluster-wide.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kubernetes import client, watch

from rig import kwait
from storage import classes, kube, nfshealth

NFS_PROVISIONER = "nfs.csi.k8s.io"  # csi-driver-nfs, what k8s/nfs installs
NFS_SERVER = f"nfs-server.{nfshealth.NAMESPACE}.svc.cluster.local"  # the class's server in k8s/nfs


def unique(stem: str) -> str:
    """``stem-<6 hex>``: a name no other test uses."""
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def storage_class(
    provisioner: str,
    *,
    name: str = "",
    mode: str = "Immediate",
    reclaim: str = "Delete",
    parameters: dict[str, str] | None = None,
    default: bool = False,
) -> dict[str, Any]:
    """A StorageClass of ``provisioner`` (``volumeBindingMode`` ``mode``, ``reclaimPolicy`` ``reclaim``).

    ``name``: empty for a unique one; ``default``: annotated as the cluster's default class.
    """
    metadata: dict[str, Any] = {"name": name or unique("class")}
    if default:
        metadata["annotations"] = {classes.DEFAULT_CLASS_ANNOTATION: "true"}
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": metadata,
        "provisioner": provisioner,
        "volumeBindingMode": mode,
        "reclaimPolicy": reclaim,
    }
    if parameters:
        body["parameters"] = parameters
    return body


def nfs_class(name: str = "", **kw: Any) -> dict[str, Any]:
    """A class of csi-driver-nfs (RWX), as k8s/nfs makes ``sharedvol-nfs``."""
    return storage_class(NFS_PROVISIONER, name=name or unique("nfs"), **kw)


def local_path_class(name: str = "", **kw: Any) -> dict[str, Any]:
    """A class shaped like rancher's local-path: RWO only, ``WaitForFirstConsumer``."""
    kw.setdefault("mode", "WaitForFirstConsumer")
    return storage_class(classes.LOCAL_PATH, name=name or unique("local-path"), **kw)


def fallback_class(name: str = "", *, on_delete: str = "delete", **kw: Any) -> dict[str, Any]:
    """A class of sharedvol's fallback provisioner, base path ``/var/lib/sharedvol``; ``parameters`` add to its."""
    parameters = {"basePath": "/var/lib/sharedvol", "onDelete": on_delete, **kw.pop("parameters", {})}
    return storage_class(classes.FALLBACK_PROVISIONER, name=name or unique("hostpath"), parameters=parameters, **kw)


def claim(
    name: str,
    storage_class: str | None,
    *,
    size: str = "1Gi",
    mode: str = "ReadWriteMany",
    volume_name: str = "",
    namespace: str = "",
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A PersistentVolumeClaim of ``storage_class`` (``""``: static binding only; ``None``: names no class).

    ``volume_name`` pre-binds it; ``spec``: more fields of its spec, over the ones built.
    """
    body_spec: dict[str, Any] = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        body_spec["storageClassName"] = storage_class
    if volume_name:
        body_spec["volumeName"] = volume_name
    body_spec.update(spec or {})
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": body_spec}


def claim_model(body: dict[str, Any], *, uid: str = "") -> client.V1PersistentVolumeClaim:
    """``body`` (from :func:`claim`) as the model the kubernetes client reads, ``uid`` as the API would set it.

    For code tested without a cluster; nested fields other than ``resources`` stay dicts.
    """
    metadata, spec = body["metadata"], body["spec"]
    fields = {
        field: spec[key] for field, key in client.V1PersistentVolumeClaimSpec.attribute_map.items() if key in spec
    }
    fields["resources"] = client.V1VolumeResourceRequirements(**spec["resources"])
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(
            name=metadata["name"],
            namespace=metadata.get("namespace"),
            uid=uid or None,
            annotations=metadata.get("annotations"),
        ),
        spec=client.V1PersistentVolumeClaimSpec(**fields),
    )


class ClusterObjects:
    """Creates cluster-scoped objects (StorageClasses, PVs) for one test and deletes them after it."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.classes: list[str] = []
        self.pvs: list[str] = []

    def storage_class(self, body: dict[str, Any]) -> client.V1StorageClass:
        """Create a StorageClass from ``body``; it is deleted after the test."""
        made = self.storage.create_storage_class(body)
        self.classes.append(made.metadata.name)
        return made

    def pv(self, body: dict[str, Any]) -> client.V1PersistentVolume:
        """Create a PersistentVolume from ``body``; it is deleted after the test."""
        made = self.core.create_persistent_volume(body)
        self.pvs.append(made.metadata.name)
        return made

    def track_pv(self, name: str) -> None:
        """Delete PV ``name`` after the test (for PVs the code under test made)."""
        self.pvs.append(name)

    def cleanup(self) -> None:
        """Delete everything made or tracked, ignoring what is already gone."""
        for delete, names in (
            (self.core.delete_persistent_volume, self.pvs),
            (self.storage.delete_storage_class, self.classes),
        ):
            for name in names:
                try:
                    delete(name)
                except client.ApiException as e:
                    if e.status != 404:
                        raise


def workload(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    """A Deployment or DaemonSet of one container labelled ``app.kubernetes.io/name: name``, as k8s/nfs labels."""
    labels = {"app.kubernetes.io/name": name}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "main", "image": "busybox:1.37.0"}]}}
    body_spec = {"selector": {"matchLabels": labels}, "template": template, **spec}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "labels": labels}, "spec": body_spec}


@contextlib.contextmanager
def nfs_installed(api: client.ApiClient, made: ClusterObjects, *, timeout: float = 60) -> Iterator[None]:
    """StorageClass sharedvol-nfs and what doctor checks of k8s/nfs, each Ready; all removed after the block.

    In namespace sharedvol-nfs: Deployment csi-nfs-controller, DaemonSet csi-nfs-node, Deployment nfs-server and
    its Service (whose EndpointSlice the controller-manager makes ready once kwok runs the pod); the CSIDriver
    nfs.csi.k8s.io; the class (server: the Service's name). The pods run nothing: kwok marks them Running and Ready.
    """
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    storage = client.StorageV1Api(api)
    ns = nfshealth.NAMESPACE
    namespace_gone(core, ns, timeout)
    core.create_namespace({"metadata": {"name": ns}})
    try:
        driver = {"attachRequired": False, "volumeLifecycleModes": ["Persistent"]}
        storage.create_csi_driver({"metadata": {"name": NFS_PROVISIONER}, "spec": driver})
        apps.create_namespaced_deployment(ns, workload("Deployment", nfshealth.CONTROLLER, replicas=1))
        apps.create_namespaced_daemon_set(ns, workload("DaemonSet", nfshealth.NODE_PLUGIN))
        apps.create_namespaced_deployment(ns, workload("Deployment", "nfs-server", replicas=1))
        service = {"name": "nfs", "port": 2049, "protocol": "TCP"}
        selector = {"app.kubernetes.io/name": "nfs-server"}
        core.create_namespaced_service(
            ns, {"metadata": {"name": "nfs-server"}, "spec": {"selector": selector, "ports": [service]}}
        )
        made.storage_class(nfs_class(classes.NFS_CLASS, parameters={"server": NFS_SERVER, "share": "/"}))
        for list_fn, name, ready in (
            (apps.list_namespaced_deployment, nfshealth.CONTROLLER, lambda o: (o.status.ready_replicas or 0) >= 1),
            (apps.list_namespaced_daemon_set, nfshealth.NODE_PLUGIN, lambda o: (o.status.number_ready or 0) >= 1),
        ):
            kwait.until(list_fn, ready, ns, timeout=timeout, what=name, **kwait.named(name))
        server_ready(api, True, timeout=timeout)
        yield
    finally:
        with contextlib.suppress(client.ApiException):
            storage.delete_csi_driver(NFS_PROVISIONER)
        namespace_gone(core, ns, timeout, delete=True)


def server_ready(api: client.ApiClient, ready: bool, *, timeout: float = 60) -> None:
    """Wait until the Service nfs-server of :func:`nfs_installed` has a ready endpoint (``ready``) or none.

    Watched as JSON: the client's model refuses a slice without endpoints (what a server scaled to zero has).
    """
    list_slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice
    selector = f"{nfshealth.SERVICE_NAME_LABEL}=nfs-server"
    deadline, last = time.monotonic() + timeout, None
    while (left := deadline - time.monotonic()) > 0:
        w = watch.Watch(return_type="object")  # a watch without resourceVersion first sends what exists
        for event in w.stream(list_slices, nfshealth.NAMESPACE, label_selector=selector, timeout_seconds=int(left) + 1):
            last = event["raw_object"]
            if event["type"] != "DELETED" and nfshealth.has_ready_endpoint([last]) == ready:
                w.stop()
                return
    raise AssertionError(f"Service nfs-server: {'no' if ready else 'a'} ready endpoint after {timeout:.0f} s: {last}")


def namespace_gone(core: client.CoreV1Api, name: str, timeout: float, *, delete: bool = False) -> None:
    """Wait until namespace ``name``, being deleted (or deleted now when ``delete``), is gone.

    For the fixed namespaces of k8s/ that tests make (a deleted namespace takes a while, and nothing can be
    created in it meanwhile).

    Raises:
        AssertionError: it exists and is not being deleted (another test left it), or is not gone in time.
    """
    try:
        ns = core.read_namespace(name)
        if delete:
            core.delete_namespace(name)
        elif ns.metadata.deletion_timestamp is None:
            raise AssertionError(f"namespace {name} exists already: a test before this one left it")
    except client.ApiException as e:
        if e.status == 404:
            return
        raise
    uid, what = ns.metadata.uid, f"namespace {name}"
    if not kube.wait_gone(core.list_namespace, name=name, uid=uid, what=what, kind="Namespaces", timeout=timeout):
        raise AssertionError(f"{what} was not gone in {timeout:.0f} s")
