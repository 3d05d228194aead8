"""The real KFP backend's wiring, on the kwok control plane (pods are scheduled but never run there).

``sharedvol submit`` talks to KFP's real api-server (PostgreSQL, MinIO behind it); the api-server compiles the
run into an Argo Workflow whose pods resolve the backend by its in-cluster names; Argo's real workflow-controller
starts the root driver pod from the local images; the persistence agent reports the workflow back to the API.
What happens inside the pods is the real node's part (test_journey_node.py). The KFP UI's server listens on
loopback only, with a kubeconfig that may read no more than its handlers need.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from rig import cluster as cp
from rig import kwait
from rig.kfp import backend as kb
from rig.kfp import config as kc

WAIT_S = 120.0


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kb.KfpBackend]:
    """A kwok control plane and the real backend wired to it, for this module."""
    workdir = tmp_path_factory.mktemp("kfp-kwok")
    plane = cp.ControlPlane(workdir=workdir / "cluster", nodes=1).start()
    try:
        kfp = kb.KfpBackend(
            workdir=workdir / "kfp",
            kubeconfig=plane.kubeconfig,
            kubectl_bin=plane.bin_dir,
            address=kb.machine_address(),
        )
        kfp.start()
        try:
            yield kfp
        finally:
            kfp.stop()
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def api(backend: kb.KfpBackend) -> Any:
    """A Kubernetes client for the backend's cluster."""
    from kubernetes import config

    return config.new_client_from_config(str(backend.kubeconfig))


@pytest.fixture(scope="module")
def submitted(backend: kb.KfpBackend) -> dict[str, str]:
    """``sharedvol submit`` (no --wait) against the real api-server: its output lines by their first word."""
    env = {**os.environ, "PYTHONPATH": str(kb.REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", "submit", "--host", backend.api_url, "--image", "sharedvol:0.1.0",
         "--storage-class", "standard", "--epochs", "1", "--data-source", "synthetic:64:32", "--run-name", "wiring"],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if ":" in line
    }


def _workflow(api: Any, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first Argo Workflow in ``kubeflow`` for which ``predicate`` holds (list, then watch; with a deadline)."""
    from kubernetes import client, watch

    custom = client.CustomObjectsApi(api)
    args = ("argoproj.io", "v1alpha1", kc.NAMESPACE, "workflows")
    deadline = time.monotonic() + WAIT_S
    listing = custom.list_namespaced_custom_object(*args)
    for wf in listing["items"]:
        if predicate(wf):
            return dict(wf)
    rv = listing["metadata"]["resourceVersion"]
    while (left := deadline - time.monotonic()) > 0:
        w = watch.Watch()
        for event in w.stream(
            custom.list_namespaced_custom_object, *args, resource_version=rv, timeout_seconds=max(1, int(left))
        ):
            rv = event["object"]["metadata"]["resourceVersion"]
            if event["type"] != "DELETED" and predicate(event["object"]):
                w.stop()
                return dict(event["object"])
    raise AssertionError(f"no workflow in {kc.NAMESPACE} matched within {WAIT_S:.0f} s")


def test_submit_to_the_real_api_server_makes_a_workflow_whose_pods_resolve_the_backend_by_its_cluster_names(
    api: Any, submitted: dict[str, str]
) -> None:
    from kubernetes import client

    wf = _workflow(api, lambda w: True)

    aliases = {name: entry["ip"] for entry in wf["spec"].get("hostAliases", []) for name in entry["hostnames"]}
    core = client.CoreV1Api(api)
    for service, name in (("ml-pipeline", "ml-pipeline.kubeflow.svc.cluster.local"),
                          ("metadata-grpc-service", "metadata-grpc-service.kubeflow.svc.cluster.local"),
                          ("minio-service", "minio-service.kubeflow")):  # fmt: skip
        assert aliases.get(name) == core.read_namespaced_service(service, kc.NAMESPACE).spec.cluster_ip
    assert wf["spec"]["serviceAccountName"] == kc.RUNNER_SA
    images = {c.get("image") for t in wf["spec"]["templates"] for c in [t.get("container") or {}]}
    assert kc.Images().driver in images


def test_the_workflow_controller_starts_the_root_driver_pod_from_the_local_images(
    api: Any, submitted: dict[str, str]
) -> None:
    from kubernetes import client

    wf = _workflow(api, lambda w: True)
    selector = f"workflows.argoproj.io/workflow={wf['metadata']['name']}"

    pod = kwait.until(
        client.CoreV1Api(api).list_namespaced_pod, lambda p: True, kc.NAMESPACE, label_selector=selector,
        timeout=WAIT_S, what="the workflow's first pod",
    )  # fmt: skip

    images = {c.name: c.image for c in [*(pod.spec.init_containers or []), *pod.spec.containers]}
    assert images["main"] == kc.Images().driver
    assert images["init"] == images["wait"] == kc.Images().argoexec
    assert pod.spec.service_account_name == kc.RUNNER_SA


def test_the_persistence_agent_reports_the_workflow_back_to_the_api(
    backend: kb.KfpBackend, submitted: dict[str, str]
) -> None:
    run_id = submitted["run"].rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + WAIT_S
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = requests.get(f"{backend.api_url}/apis/v2beta1/runs/{run_id}", timeout=10).json()
        if run.get("run_details", {}).get("task_details"):
            break
        # The API has no watch: poll with a bounded pause (this is KFP's REST API, not a Kubernetes object).
        time.sleep(1.0)

    assert run["run_id"] == run_id
    assert run.get("run_details", {}).get("task_details"), f"no task details reported: {run}"
    assert run["state"] in ("PENDING", "RUNNING")


def test_the_kfp_ui_serves_its_page_on_loopback_and_not_on_the_machines_address(backend: kb.KfpBackend) -> None:
    assert backend.ports is not None
    page = requests.get(f"{backend.ui_url}/", timeout=10)

    assert page.status_code == 200 and "<title>Kubeflow Pipelines</title>" in page.text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{backend.address}:{backend.ports.ui}/", timeout=10)


def test_the_kfp_uis_kubeconfig_may_read_pod_logs_and_the_artifact_secret_and_nothing_more(
    backend: kb.KfpBackend,
) -> None:
    config = str(backend.workdir / "ui.kubeconfig")

    def may(*what: str) -> bool:
        out = cp.kubectl(backend.kubectl_bin, Path(config), "auth", "can-i", *what, "-n", kc.NAMESPACE, check=False)
        return out.stdout.strip() == "yes"

    assert may("get", "pods/log") and may("get", "pods") and may("list", "events")
    assert may("get", f"secret/{kc.ARTIFACT_SECRET}") and may("get", "workflows.argoproj.io")
    assert not may("list", "secrets") and not may("get", "secret/other")
    assert not may("create", "pods") and not may("delete", "workflows.argoproj.io")
    assert not may("get", "pods", "--all-namespaces")
