"""``sharedvol run`` against the real control plane and the local fake KFP API server: it checks, chooses or makes
storage, then compiles, submits and follows, in that order, and fails clearly (creating nothing) when it cannot."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pipelines import errors, kfp_api, options, params, submit
from pipelines import run as run_lib
from rig import kwait
from rig.cluster import ClusterHandle
from storage import choice, specs
from tests import objects
from tests.controlplane import prepare_kubelet, rbac
from tests.kfp_fake import GOOD_TOKEN, FakeKfp
from tests.objects import ClusterObjects

METRICS = {"accuracy-top1": 0.912, "accuracy-top5": 0.995, "test-loss": 0.31, "test-samples": 10000.0}
FAST = submit.PollSettings(initial_s=0.01, factor=1.0, max_s=0.01, timeout_s=60)


def settings(
    host: str,
    namespace: str,
    *,
    storage: str = "auto",
    gpus: int = 0,
    volume: options.StorageChoice | None = None,
    node_selector: dict[str, str] | None = None,
) -> run_lib.RunSettings:
    """Settings for a CPU run (kwok nodes have no GPUs) in ``namespace``, polling the fake at once."""
    compile_opts = options.CompileOptions(storage=volume or options.StorageChoice(), node_selector=node_selector or {})
    return run_lib.RunSettings(
        submit=submit.SubmitSettings(
            api=kfp_api.ApiSettings(host=host, token=GOOD_TOKEN, namespace=namespace, read_backoff_s=()),
            compile=compile_opts,
            params=params.RunParameters(epochs=2, gpu_count=gpus, volume_size="1Gi", data_source="synthetic"),
            run_name="journey",
            wait=True,
            poll=FAST,
        ),
        storage=choice.parse(storage),
        bind_timeout_s=30,
    )


class Journey:
    """Runs ``sharedvol run`` and records, for every progress line, how many KFP requests had been made by then."""

    def __init__(self, api: Any, fake: FakeKfp) -> None:
        self.api = api
        self.fake = fake
        self.lines: list[str] = []
        self.kfp_calls_at: dict[str, int] = {}
        self.claim_phase_at_pipeline: str | None = None

    def progress(self, line: str) -> None:
        self.lines.append(line)
        self.kfp_calls_at.setdefault(line, len(self.fake.requests))

    def run(self, s: run_lib.RunSettings, *, api: Any = None) -> run_lib.RunResult:
        kfp = kfp_api.KfpApi(s.submit.api, sleep=lambda _: None)
        return run_lib.run(
            s, progress=self.progress, api=api if api is not None else self.api, kfp=kfp, sleep=lambda _: None
        )

    def index(self, prefix: str) -> int:
        """Where the first line starting with ``prefix`` came."""
        found = [i for i, line in enumerate(self.lines) if line.startswith(prefix)]
        assert found, f"no line starts with {prefix!r}:\n" + "\n".join(self.lines)
        return found[0]

    def uploaded_spec(self) -> dict[str, Any]:
        (spec,) = self.fake.specs.values()
        return spec

    def uploads(self) -> int:
        return len(self.fake.calls("POST", "/apis/v2beta1/pipelines/upload_version"))


def claims_and_volumes(api: Any, namespace: str) -> tuple[list[str], list[str]]:
    core = client.CoreV1Api(api)
    claims = [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items]
    pvs = [
        pv.metadata.name
        for pv in core.list_persistent_volume().items
        if (pv.spec.claim_ref and pv.spec.claim_ref.namespace == namespace)
    ]
    return claims, pvs


def create_pvc_class(spec: dict[str, Any]) -> str | None:
    """The storage class create-volume asks for in a compiled pipeline spec (None: no create-volume task)."""
    task = spec["root"]["dag"]["tasks"].get("createpvc")
    if task is None:
        return None
    return task["inputs"]["parameters"]["storage_class_name"]["runtimeValue"]["constant"]


def test_with_sharedvol_nfs_installed_run_gets_a_dynamic_claim_per_run_and_prints_the_metrics(
    api: Any, namespace: str, cluster_objects: ClusterObjects, fake_kfp: FakeKfp
) -> None:
    journey = Journey(api, fake_kfp)
    with objects.nfs_installed(api, cluster_objects):
        result = journey.run(settings(fake_kfp.url, namespace))

    assert result.plan is not None and result.plan.strategy == "dynamic"
    assert result.storage == options.StorageChoice.dynamic("sharedvol-nfs")
    assert result.doctor_strategy == "dynamic"
    assert result.created == []
    assert claims_and_volumes(api, namespace) == ([], [])
    assert create_pvc_class(journey.uploaded_spec()) == "sharedvol-nfs"
    assert result.submitted.state == "SUCCEEDED"
    assert result.submitted.metrics == METRICS
    order = [
        journey.index(f"doctor: StorageClasses: sharedvol-nfs ({objects.NFS_PROVISIONER}, RWX yes)"),
        journey.index("doctor: sharedvol-nfs works as far as doctor checks"),
        journey.index("doctor: a run gets: dynamic"),
        journey.index("doctor: nodes for train-resnet: "),
        journey.index("doctor: the KFP API at"),
        journey.index(f"storage: plan for claim {namespace}/sharedvol-runs: dynamic"),
        journey.index("pipeline: image sharedvol:0.1.0; volume: a new ReadWriteMany claim of StorageClass"),
        journey.index("created pipeline 'resnet18-cifar10'"),
        journey.index("uploaded pipeline version"),
        journey.index("run run-"),
        journey.index("  train-resnet: RUNNING"),
        journey.index("  delete-volume: SUCCEEDED"),
    ]
    assert order == sorted(order)
    assert journey.lines[-2].endswith(" SUCCEEDED")
    assert journey.lines[-1] == "metrics read from ML Metadata (the produce-metrics task's Metrics artifact)"
    assert journey.kfp_calls_at[journey.lines[journey.index("pipeline: ")]] == 1  # only the /healthz probe


@contextlib.contextmanager
def fallback_provisioner(api: Any, cluster_objects: ClusterObjects) -> Iterator[None]:
    """StorageClass sharedvol-hostpath and a ready provisioner DaemonSet where k8s/fallback puts it."""
    cluster_objects.storage_class(
        {"metadata": {"name": "sharedvol-hostpath"}, "provisioner": "sharedvol.io/hostpath", "reclaimPolicy": "Delete"}
    )
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = "sharedvol-system"
    objects.namespace_gone(core, ns, 60)  # the previous test's, being deleted
    core.create_namespace({"metadata": {"name": ns}})
    apps.create_namespaced_daemon_set(ns, objects.workload("DaemonSet", "sharedvol-provisioner"))
    try:
        kwait.until(
            apps.list_namespaced_daemon_set,
            lambda d: (d.status.number_ready or 0) >= 1,
            ns,
            **kwait.named("sharedvol-provisioner"),
            what="DaemonSet sharedvol-provisioner",
        )
        yield
    finally:
        objects.namespace_gone(core, ns, 60, delete=True)


def test_with_only_the_fallback_class_and_its_provisioner_running_run_uses_sharedvol_hostpath(
    api: Any, namespace: str, cluster_objects: ClusterObjects, fake_kfp: FakeKfp
) -> None:
    journey = Journey(api, fake_kfp)
    with fallback_provisioner(api, cluster_objects):
        result = journey.run(settings(fake_kfp.url, namespace))
    assert result.storage == options.StorageChoice.dynamic("sharedvol-hostpath")
    assert result.created == []
    assert create_pvc_class(journey.uploaded_spec()) == "sharedvol-hostpath"
    assert "doctor: sharedvol-nfs is not installed (kubectl apply -k k8s/nfs)" in journey.lines


def test_with_sharedvol_nfs_installed_but_its_driver_missing_run_passes_it_over_for_the_fallback_and_says_why(
    api: Any, namespace: str, cluster_objects: ClusterObjects, fake_kfp: FakeKfp
) -> None:
    cluster_objects.storage_class(objects.nfs_class("sharedvol-nfs", parameters={"server": "10.0.0.5"}))
    journey = Journey(api, fake_kfp)
    with fallback_provisioner(api, cluster_objects):
        result = journey.run(settings(fake_kfp.url, namespace))
    assert result.storage == options.StorageChoice.dynamic("sharedvol-hostpath")
    assert create_pvc_class(journey.uploaded_spec()) == "sharedvol-hostpath"
    not_working = (
        "sharedvol-nfs is installed but not working: the CSIDriver nfs.csi.k8s.io is missing (kubectl apply -k k8s/nfs)"
    )
    assert journey.lines[journey.index("doctor: sharedvol-nfs is installed")].startswith(f"doctor: {not_working}; ")
    plan_lines = journey.lines[journey.index(f"storage: plan for claim {namespace}/sharedvol-runs: dynamic")]
    assert f"  why: {not_working}; " in plan_lines
    assert "  why: no NFS-like class; StorageClass sharedvol-hostpath (sharedvol serve) is installed" in plan_lines


def test_without_an_rwx_class_run_makes_a_static_volume_bound_before_submitting_and_reuses_it(
    api: Any, namespace: str, cluster: ClusterHandle, cluster_objects: ClusterObjects, fake_kfp: FakeKfp
) -> None:
    # a local-path-like class and the fallback class without its provisioner: neither can serve the run
    cluster_objects.storage_class(
        {"metadata": {"name": f"local-{namespace}"}, "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete"}
    )
    cluster_objects.storage_class({"metadata": {"name": "sharedvol-hostpath"}, "provisioner": "sharedvol.io/hostpath"})
    pv_name = specs.static_pv_name(namespace, "sharedvol-runs")
    cluster_objects.track_pv(pv_name)
    journey = Journey(api, fake_kfp)
    phase_when_compiling: list[str] = []

    def progress(line: str) -> None:
        Journey.progress(journey, line)
        if line.startswith("pipeline: "):
            claim = client.CoreV1Api(api).read_namespaced_persistent_volume_claim("sharedvol-runs", namespace)
            phase_when_compiling.append(claim.status.phase)

    journey.progress = progress  # type: ignore[method-assign]
    own_image = settings(fake_kfp.url, namespace)
    compile_opts = dataclasses.replace(own_image.submit.compile, image="registry.example/sharedvol:7")
    own_image = dataclasses.replace(own_image, submit=dataclasses.replace(own_image.submit, compile=compile_opts))
    with prepare_kubelet.playing_kubelet(api, namespace) as prepared:
        result = journey.run(own_image)

    # the volume's root was handed to the steps' user by one pod of the run's own image
    assert [p.spec.containers[0].image for p in prepared] == ["registry.example/sharedvol:7"]

    assert result.plan is not None and result.plan.strategy == "static"
    assert result.created == [f"PersistentVolume/{pv_name}", "PersistentVolumeClaim/sharedvol-runs"]
    assert result.storage == options.StorageChoice.existing("sharedvol-runs")
    assert phase_when_compiling == ["Bound"]
    assert claims_and_volumes(api, namespace) == (["sharedvol-runs"], [pv_name])
    pv = client.CoreV1Api(api).read_persistent_volume(pv_name)
    node_terms = pv.spec.node_affinity.required.node_selector_terms
    assert node_terms[0].match_expressions[0].values == [result.training_nodes[0]]
    assert pv.spec.persistent_volume_reclaim_policy == "Retain"
    assert create_pvc_class(journey.uploaded_spec()) is None
    (version,) = next(iter(fake_kfp.versions.values()))
    assert "the existing claim 'sharedvol-runs'" in version["description"]
    order = [
        journey.index(f"storage: plan for claim {namespace}/sharedvol-runs: static"),
        journey.index(f"storage: created PersistentVolume/{pv_name}"),
        journey.index("storage: created PersistentVolumeClaim/sharedvol-runs"),
        journey.index(f"storage: claim {namespace}/sharedvol-runs is Bound to PersistentVolume {pv_name}"),
        journey.index("pipeline: "),
        journey.index("uploaded pipeline version"),
    ]
    assert order == sorted(order)
    assert result.notes == [
        f"claim {namespace}/sharedvol-runs stays for the next runs; free it with "
        f"`sharedvol release sharedvol-runs -n {namespace}`"
    ]

    again = Journey(api, fake_kfp)
    second = again.run(own_image)  # the PV says it was handed over: no pod this time
    assert second.created == []
    assert f"storage: claim {namespace}/sharedvol-runs exists already and matches: reusing it" in again.lines
    assert any(line.startswith("pipeline version resnet18-cifar10-") and "reusing it" in line for line in again.lines)
    assert journey.uploads() == 1


def test_when_no_node_can_run_train_resnet_run_fails_before_creating_anything(
    api: Any, namespace: str, fake_kfp: FakeKfp
) -> None:
    journey = Journey(api, fake_kfp)
    with pytest.raises(run_lib.NoTrainingNodeError) as e:
        journey.run(settings(fake_kfp.url, namespace, node_selector={"sharedvol.io/gpu-node": "yes"}))
    assert str(e.value).startswith("no Ready node matching sharedvol.io/gpu-node=yes for train-resnet (Ready nodes: ")
    assert "fix --node-selector" in e.value.hint
    assert claims_and_volumes(api, namespace) == ([], [])
    assert fake_kfp.requests == []


def test_asking_for_a_gpu_on_a_cluster_without_gpu_nodes_fails_naming_the_fix(
    api: Any, namespace: str, fake_kfp: FakeKfp
) -> None:
    journey = Journey(api, fake_kfp)
    with pytest.raises(run_lib.NoTrainingNodeError) as e:
        journey.run(settings(fake_kfp.url, namespace, gpus=1))
    assert e.value.message == "train-resnet asks for 1 nvidia.com/gpu and no Ready node offers that many"
    assert "--gpus 0" in e.value.hint
    assert claims_and_volumes(api, namespace) == ([], [])


def test_an_unreachable_kfp_api_fails_before_the_static_volume_is_made(api: Any, namespace: str) -> None:
    journey = Journey(api, FakeKfp())  # never started: nothing listens at its address
    with pytest.raises(errors.KfpUnreachableError):
        journey.run(settings("http://127.0.0.1:9", namespace))
    assert claims_and_volumes(api, namespace) == ([], [])


def test_storage_nfs_without_the_class_installed_fails_naming_the_install_command(
    api: Any, namespace: str, fake_kfp: FakeKfp
) -> None:
    journey = Journey(api, fake_kfp)
    with pytest.raises(run_lib.StorageUnavailableError) as e:
        journey.run(settings(fake_kfp.url, namespace, storage="nfs"))
    assert e.value.message.startswith("no storage for the run (StorageClass 'sharedvol-nfs' does not exist")
    assert "kubectl apply -k k8s/nfs" in e.value.hint
    assert fake_kfp.calls("POST", "/apis/v2beta1/pipelines/upload_version") == []


def test_without_rwx_storage_or_permission_to_create_pvs_run_fails_clearly_and_leaves_nothing(
    api: Any, namespace: str, cluster: ClusterHandle, fake_kfp: FakeKfp, tmp_path: Path
) -> None:
    name = f"engineer-{namespace}"
    read = ["get", "list", "watch"]
    rules = [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims", "persistentvolumes", "events"], "verbs": read},
        {"apiGroups": [""], "resources": ["namespaces", "nodes", "pods", "configmaps"], "verbs": read},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create", "delete"]},
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": read},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": read},
    ]
    with rbac.acting_as(cluster, api, namespace, name, rules) as kubeconfig:
        s = settings(fake_kfp.url, namespace)
        s = run_lib.RunSettings(**{**s.__dict__, "kubeconfig": str(kubeconfig)})
        journey = Journey(api, fake_kfp)
        with pytest.raises(run_lib.StorageUnavailableError) as e:
            run_lib.run(s, progress=journey.progress, kfp=kfp_api.KfpApi(s.submit.api), sleep=lambda _: None)
    assert e.value.message.startswith("no storage for the run (not allowed to create PersistentVolume")
    assert "kubectl apply -k k8s/nfs" in e.value.hint and "kubectl apply -k k8s/fallback" in e.value.hint
    assert isinstance(e.value.__cause__, Exception)
    assert claims_and_volumes(api, namespace) == ([], [])
    with pytest.raises(client.ApiException):
        client.CoreV1Api(api).read_persistent_volume(specs.static_pv_name(namespace, "sharedvol-runs"))
    assert fake_kfp.calls("POST", "/apis/v2beta1/pipelines/upload_version") == []
    assert journey.index("storage: plan for claim") > journey.index("doctor: the KFP API at")


def test_an_explicit_existing_claim_that_is_not_rwx_is_refused_before_submitting(
    api: Any, namespace: str, fake_kfp: FakeKfp
) -> None:
    client.CoreV1Api(api).create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "rwo"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    s = settings(fake_kfp.url, namespace, storage="pvc:rwo")
    with pytest.raises(run_lib.StorageUnavailableError) as e:
        Journey(api, fake_kfp).run(s)
    assert "not ReadWriteMany" in e.value.message
    assert fake_kfp.calls("POST", "/apis/v2beta1/pipelines/upload_version") == []


def test_storage_fallback_with_the_class_but_no_running_provisioner_fails_naming_k8s_fallback(
    api: Any, namespace: str, cluster_objects: ClusterObjects, fake_kfp: FakeKfp
) -> None:
    cluster_objects.storage_class({"metadata": {"name": "sharedvol-hostpath"}, "provisioner": "sharedvol.io/hostpath"})
    with pytest.raises(run_lib.StorageUnavailableError) as e:
        Journey(api, fake_kfp).run(settings(fake_kfp.url, namespace, storage="fallback"))
    assert "its provisioner (`sharedvol serve`) is not running" in e.value.message
    assert e.value.hint.startswith("kubectl apply -k k8s/fallback")
    assert claims_and_volumes(api, namespace) == ([], [])


def test_storage_on_an_nfs_export_makes_a_static_nfs_volume_bound_before_submitting(
    api: Any, namespace: str, cluster_objects: ClusterObjects, fake_kfp: FakeKfp
) -> None:
    pv_name = specs.static_pv_name(namespace, "sharedvol-runs")
    cluster_objects.track_pv(pv_name)
    journey = Journey(api, fake_kfp)

    result = journey.run(settings(fake_kfp.url, namespace, storage="nfs:10.0.0.5:/exports/kfp"))

    assert result.plan is not None and result.plan.strategy == "static"
    assert result.storage == options.StorageChoice.existing("sharedvol-runs")
    assert result.created == [f"PersistentVolume/{pv_name}", "PersistentVolumeClaim/sharedvol-runs"]
    pv = client.CoreV1Api(api).read_persistent_volume(pv_name)
    assert (pv.spec.nfs.server, pv.spec.nfs.path) == ("10.0.0.5", "/exports/kfp")
    assert pv.status.phase == "Bound"
    assert create_pvc_class(journey.uploaded_spec()) is None
