"""Kubeflow Trainer v2.0.0 and JobSet v0.8.2 installed on the real node (``make kfp-up``, the node and real KFP tiers).

:func:`install` builds the two controller images from the binaries of scripts/trainer/build.sh and imports them into
the node (scripts/trainer/images.sh), applies the rendered CRDs and waits until they are Established, applies both
controllers (namespaces, RBAC, webhooks, Deployments) and waits until their Deployments are available and their
webhooks answer, then applies the ``torch-distributed`` ClusterTrainingRuntime and, when asked, k8s/trainjob-rbac.
Applying again is harmless (server-side apply); the controllers are left running (the node's tear-down removes them).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import cluster as cp
from rig import kwait
from rig.paths import REPO

SCRIPTS = REPO / "scripts" / "trainer"
CRDS = {
    "jobset-crds.yaml": ("jobsets.jobset.x-k8s.io",),
    "trainer-crds.yaml": (
        "clustertrainingruntimes.trainer.kubeflow.org",
        "trainingruntimes.trainer.kubeflow.org",
        "trainjobs.trainer.kubeflow.org",
    ),
}
CONTROLLERS = (
    ("jobset-system", "jobset-controller-manager"),
    ("kubeflow-system", "kubeflow-trainer-controller-manager"),
)
READY_TIMEOUT_S = 180.0
WEBHOOK_TIMEOUT_S = 60.0
# A webhook's certificate is made by its controller after it starts; the API server's calls fail until then and
# there is nothing to watch for it: each dry run is retried after these pauses (seconds), then the deadline.
WEBHOOK_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)


class TrainerInstallError(RuntimeError):
    """Trainer or JobSet did not install or come up; the message says which part and where to look."""


@dataclass(frozen=True)
class Target:
    """Where to install: the node's admin kubeconfig, its bin directory (kubectl) and its directory (node.env)."""

    kubeconfig: Path
    bin_dir: Path
    node_dir: Path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Kubectl as the cluster's admin."""
        return cp.kubectl(self.bin_dir, self.kubeconfig, *args, check=check, input=input)


def trainer_dir() -> Path:
    """The build of scripts/trainer/build.sh: ``SHAREDVOL_TRAINER_DIR`` when it holds the binaries, else built now."""
    built = os.environ.get("SHAREDVOL_TRAINER_DIR")
    if built and (Path(built) / "bin" / "jobset-controller").exists():
        return Path(built)
    out = subprocess.run([str(SCRIPTS / "build.sh")], check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise TrainerInstallError(f"scripts/trainer/build.sh failed (exit {out.returncode}); see its output above")
    return Path(out.stdout.strip().splitlines()[-1])


def install(target: Target, *, rbac: bool = False, built: Path | None = None) -> float:
    """Install Trainer and JobSet on the node of ``target``; with ``rbac``, k8s/trainjob-rbac too (its namespace,
    ``kubeflow``, must exist). Returns the seconds it took.

    Raises:
        TrainerInstallError: a build, an apply, or a wait failed (the message names it).
    """
    from kubernetes import client, config

    t0 = time.monotonic()
    built = built or trainer_dir()
    manifests = built / "manifests"
    images = subprocess.run(
        [str(SCRIPTS / "images.sh"), str(built)], env={**os.environ, "NODE_DIR": str(target.node_dir)}, check=False
    )
    if images.returncode != 0:
        raise TrainerInstallError("the controller images did not build or import: scripts/trainer/images.sh, above")
    api = config.new_client_from_config(str(target.kubeconfig))
    ext = client.ApiextensionsV1Api(api)
    for crds, names in CRDS.items():
        _apply(target, manifests / crds)
        for name in names:
            kwait.until(ext.list_custom_resource_definition, _established, what=name, **kwait.named(name))
    for part in ("jobset.yaml", "trainer.yaml"):
        _apply(target, manifests / part)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    for namespace, name in CONTROLLERS:
        _wait_available(apps, core, namespace, name)
    _until_webhook_answers("JobSet's webhook", lambda: _dry_run_jobset(target))
    _until_webhook_answers("Trainer's webhook", lambda: _apply(target, manifests / "runtimes.yaml"))
    if rbac:
        grant_trainjob_rbac(target)
    return time.monotonic() - t0


def grant_trainjob_rbac(target: Target) -> None:
    """``kubectl apply -k k8s/trainjob-rbac``: KFP's ``kubeflow/pipeline-runner`` may create and follow TrainJobs.

    Raises:
        TrainerInstallError: the apply failed (namespace ``kubeflow`` missing: start KFP first).
    """
    out = target.kubectl("apply", "-k", str(REPO / "k8s" / "trainjob-rbac"), check=False)
    if out.returncode != 0:
        raise TrainerInstallError(f"kubectl apply -k k8s/trainjob-rbac failed: {out.stderr.strip()}")


def _apply(target: Target, path: Path) -> None:
    out = target.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path), check=False)
    if out.returncode != 0:
        raise TrainerInstallError(f"kubectl apply -f {path} failed: {out.stderr.strip()}")


def _established(crd: Any) -> bool:
    return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))


def _wait_available(apps: Any, core: Any, namespace: str, name: str) -> None:
    """Watch Deployment ``namespace/name`` until a replica is available; a controller pod that cannot start (image
    missing, crash loop) fails at once with its reason.
    """

    def available(deployment: Any) -> bool:
        if (deployment.status.available_replicas or 0) >= 1:
            return True
        for pod in core.list_namespaced_pod(namespace).items:
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting
                if waiting and waiting.reason in {"ErrImageNeverPull", "ErrImagePull", "CrashLoopBackOff"}:
                    raise TrainerInstallError(
                        f"{namespace}/{pod.metadata.name} cannot start: {waiting.reason}: {waiting.message or ''}"
                        f" (kubectl -n {namespace} logs {pod.metadata.name})"
                    )
        return False

    kwait.until(
        apps.list_namespaced_deployment,
        available,
        namespace,
        timeout=READY_TIMEOUT_S,
        what=f"Deployment {namespace}/{name} available",
        **kwait.named(name),
    )


def _dry_run_jobset(target: Target) -> None:
    """A server-side dry run of a one-pod JobSet: JobSet's defaulting and validating webhooks both answer it."""
    jobset = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": "sharedvol-webhook-probe", "namespace": "default"},
        "spec": {
            "replicatedJobs": [
                {
                    "name": "probe",
                    "template": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "probe", "image": "probe:none"}],
                                }
                            }
                        }
                    },
                }
            ]
        },
    }
    out = target.kubectl("create", "--dry-run=server", "-f", "-", check=False, input=json.dumps(jobset))
    if out.returncode != 0:
        raise TrainerInstallError(out.stderr.strip())


def _until_webhook_answers(what: str, call: Callable[[], None]) -> None:
    """Call ``call`` until it succeeds, after each pause of :data:`WEBHOOK_BACKOFF_S` (the last one repeated)
    until :data:`WEBHOOK_TIMEOUT_S`.
    """
    deadline = time.monotonic() + WEBHOOK_TIMEOUT_S
    attempt = 0
    while True:
        try:
            call()
            return
        except TrainerInstallError as e:
            if time.monotonic() > deadline:
                raise TrainerInstallError(f"{what} did not answer in {WEBHOOK_TIMEOUT_S:.0f} s: {e}") from e
            pause = WEBHOOK_BACKOFF_S[min(attempt, len(WEBHOOK_BACKOFF_S) - 1)]
            print(f"[trainer] {what}: attempt {attempt + 1} failed; will retry in {pause} s ({e})", flush=True)
            time.sleep(pause)
            attempt += 1
