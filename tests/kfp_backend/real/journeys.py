"""The tier's real runs, made once for the package (the journey's checks and the browser's share them).

Four runs at once on the real backend, each to its end: ``sharedvol submit --wait`` on a static PV, ``sharedvol
run --storage static`` whose train step is killed once and retried, a ``sharedvol run`` whose prepare-data fails,
and ``sharedvol submit --workspace`` on KFP's own workspace, a claim of a class ``sharedvol serve`` provisions. The
fixtures are re-exported by conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rig import kwait
from rig.images import STEP_IMAGE
from rig.kfp import backend as kb
from rig.kfp import config as kc
from storage import specs
from tests.controlplane.serving import PROVISIONER, Service
from tests.kfp_backend.real import uichecks

RUN_TIMEOUT_S = 900
RETRY_CLAIM = f"kfp-retried-{uuid.uuid4().hex[:6]}"  # a node kept by make node-up may hold older ones
FAILING_CLAIM = f"kfp-failing-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="package")
def static_volume(kfp_on_node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Retain hostPath PV on this machine, writable by the steps' uid 1000; deleted afterwards."""
    backend = kfp_on_node
    directory = tmp_path_factory.mktemp("volume")
    directory.chmod(0o777)
    name = f"kfp-journey-{uuid.uuid4().hex[:6]}"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(directory), "type": "Directory"},
        },
    }
    backend.kubectl("apply", "-f", "-", input=json.dumps(pv))
    yield name, directory
    backend.kubectl("delete", "pv", name, "--wait=false")


@dataclass(frozen=True)
class WorkspaceClass:
    """The class the workspace run's claim asks for, served by ``sharedvol serve`` on this machine."""

    name: str
    base: Path  # its basePath: the volumes' directories on the node (this machine)
    service: Service


@pytest.fixture(scope="package")
def workspace_class(kfp_on_node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkspaceClass]:
    """A WaitForFirstConsumer class of the fallback provisioner, ``sharedvol serve`` running for it as a process
    on this machine (the node's own filesystem: the directories it makes are the ones the kubelet mounts), archiving
    a deleted claim's directory. The class and the service's volumes are deleted afterwards."""
    backend = kfp_on_node
    base = tmp_path_factory.mktemp("workspace-volumes")
    name = f"kfp-workspace-{uuid.uuid4().hex[:6]}"
    sc = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
        "parameters": {"basePath": str(base), "onDelete": "archive"},
    }
    backend.kubectl("apply", "-f", "-", input=json.dumps(sc))
    service = Service(backend.kubeconfig, Path("/"), log=base.parent / "serve.log").start()
    try:
        yield WorkspaceClass(name, base, service)
    finally:
        service.kill(signal.SIGTERM)
        volumes = json.loads(backend.kubectl("get", "pv", "-o", "json").stdout)["items"]
        made = [v["metadata"]["name"] for v in volumes if v["spec"].get("storageClassName") == name]
        if made:
            backend.kubectl("delete", "pv", *made, "--ignore-not-found", "--wait=false")
        backend.kubectl("delete", "storageclass", name, "--ignore-not-found")


@dataclass(eq=False)  # one per command, keyed by identity
class Journey:
    """One sharedvol command against the backend, run to its end."""

    argv: list[str]
    out: subprocess.CompletedProcess[str] | None = None

    def check(self) -> subprocess.CompletedProcess[str]:
        """The finished command, asserted to have succeeded."""
        assert self.out is not None
        assert self.out.returncode == 0, self.out.stdout[-3000:] + self.out.stderr[-3000:]
        return self.out


# The submitted run's Workflow and pods go this long after it succeeds; the other runs' stay (the UI reads their
# pods' logs from Kubernetes, doctor finds the workspace's claim held by them).
SUBMIT_TTL_S = 30
KEEP_PODS = ["--ttl-after-success", "0"]
TINY = ["--image", STEP_IMAGE, "--gpus", "0", "--device", "cpu", "--batch-size", "16", "--num-workers", "0",
        "--volume-size", "1Gi", "--timeout", str(RUN_TIMEOUT_S)]  # fmt: skip


@pytest.fixture(scope="package")
def journeys(
    kfp_on_node: Any,
    static_volume: tuple[str, Path],
    workspace_class: WorkspaceClass,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """Four runs at once, each to its end: ``submit --wait`` on the static PV (1 epoch; its Workflow and pods
    deleted :data:`SUBMIT_TTL_S` after it succeeds, see :func:`submit_collected`); ``sharedvol run
    --storage static`` (2 epochs) whose train-resnet is killed once, after it published epoch 1; a ``sharedvol
    run`` whose prepare-data fails (a data directory that does not exist); and ``submit --wait --workspace`` (1
    epoch) on KFP's workspace of ``workspace_class``."""
    backend = kfp_on_node
    pv, _ = static_volume
    base = tmp_path_factory.mktemp("run-static")
    api = ["--host", backend.api_url, "--ui-url", backend.ui_url]
    submit = Journey([
        "submit", *api, "--wait", "--static-pv", pv, "--storage-class", "", "--epochs", "1", "--run-name", "journey",
        "--data-source", "synthetic:64:32", "--ttl-after-success", str(SUBMIT_TTL_S), *TINY,
    ])  # fmt: skip
    run = Journey([
        "run", *api, "--kubeconfig", str(backend.kubeconfig), "--namespace", kc.NAMESPACE, "--storage", "static",
        "--host-path", str(base), "--claim-name", RETRY_CLAIM, "--epochs", "2", "--train-retries", "1",
        "--run-name", "retried", "--data-source", "synthetic:256:32", *TINY, *KEEP_PODS,  # 16 iterations an epoch
    ])  # fmt: skip
    failing = Journey([
        "run", *api, "--kubeconfig", str(backend.kubeconfig), "--namespace", kc.NAMESPACE, "--storage", "static",
        "--host-path", str(base), "--claim-name", FAILING_CLAIM, "--epochs", "1", "--run-name", "failing",
        "--data-source", "/no/such/directory", *TINY, *KEEP_PODS,
    ])  # fmt: skip
    workspace = Journey([
        "submit", *api, "--wait", "--workspace", "--storage", workspace_class.name, "--epochs", "1",
        "--run-name", "workspace", "--data-source", "synthetic:64:32", *TINY, *KEEP_PODS,
    ])  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(kb.REPO)}
    started = {
        j: subprocess.Popen([sys.executable, "-m", "pipelines", *j.argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
        for j in (submit, run, failing, workspace)
    }  # fmt: skip
    killed: dict[str, Any] = {}
    killer = threading.Thread(target=_kill_train_after_epoch_1, args=(backend, base, killed), daemon=True)
    killer.start()
    for j, proc in started.items():
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S + 300)
        j.out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    killer.join(timeout=5)
    yield {"submit": submit, "run": run, "failing": failing, "workspace": workspace, "base": base, "killed": killed}
    # The static PVs sharedvol made (Retain): the claims go with the namespace, the PVs with this.
    made = [specs.static_pv_name(kc.NAMESPACE, claim) for claim in (RETRY_CLAIM, FAILING_CLAIM)]
    backend.kubectl("delete", "pv", *made, "--ignore-not-found", "--wait=false")


@pytest.fixture(scope="package")
def submit_collected(kfp_on_node: Any, static_volume: tuple[str, Path], journeys: dict[str, Any]) -> str:
    """The submitted run's id, once Argo deleted its Workflow (its TTL) and with it the pods that held its claim:
    the static PV is Released."""
    from kubernetes import client, config

    run_id = uichecks.run_id(journeys["submit"].check().stdout)
    core = client.CoreV1Api(config.new_client_from_config(str(kfp_on_node.kubeconfig)))
    pv, _ = static_volume
    kwait.until(
        core.list_persistent_volume,
        lambda v: v.status.phase == "Released",
        timeout=SUBMIT_TTL_S + 180,
        what=f"PV {pv} Released (the submitted run's pods gone)",
        **kwait.named(pv),
    )
    return run_id


def _kill_train_after_epoch_1(backend: Any, base: Path, killed: dict[str, Any]) -> None:
    """Once train-resnet's log says it published epoch 1, SIGKILL its training process (as the kernel's OOM killer
    would): the train step fails, and the workflow retries it."""
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(str(backend.kubeconfig)))

    def training(pod: Any) -> bool:
        claims = {v.persistent_volume_claim.claim_name for v in pod.spec.volumes or [] if v.persistent_volume_claim}
        spec = json.dumps([[c.command, c.args] for c in pod.spec.containers])
        return pod.status.phase == "Running" and RETRY_CLAIM in claims and "train-resnet" in spec

    try:
        pod = kwait.until(core.list_namespaced_pod, training, kc.NAMESPACE, timeout=RUN_TIMEOUT_S, what="train pod")
        logs = subprocess.Popen(
            [str(backend.kubectl_bin / "kubectl"), "--kubeconfig", str(backend.kubeconfig), "-n", kc.NAMESPACE,
             "logs", "-f", pod.metadata.name, "-c", "main"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert logs.stdout is not None
        for line in logs.stdout:
            if "epoch 1/2: mean loss" in line and "published" in line:
                for pid in _training_processes(base):
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                break
        logs.kill()
    except Exception as e:  # reported by the test that needs the kill
        killed["error"] = repr(e)


def _training_processes(base: Path) -> list[int]:
    """The python processes running train-resnet with a volume from ``base`` mounted (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            exe = os.readlink(proc / "exe")
            mounts = (proc / "mountinfo").read_text()
        except OSError:
            continue
        if "python" in Path(exe).name and "train-resnet" in cmdline and str(base) in mounts:
            found.append(int(proc.name))
    return found
