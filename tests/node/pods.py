"""Pods on the real node for tests: specs like the pipeline's (the step image, uid 1000, the claim at /mnt/shared),
run to completion with a watch and a deadline, their logs returned."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import cluster as cp
from rig import images, kwait
from rig.node import nodeconfig

MOUNT = "/mnt/shared"
DONE = {"Succeeded", "Failed"}


def step_pod(
    name: str,
    args: list[str],
    claim: str | None = None,
    image: str = images.STEP_IMAGE,
    command: list[str] | None = None,
    uid: int = 1000,
) -> dict[str, Any]:
    """A pod that runs ``args`` (after the image's entry point, or ``command``) as ``uid``, the claim at /mnt/shared."""
    container: dict[str, Any] = {
        "name": "step",
        "image": image,
        "imagePullPolicy": "Never",
        "args": args,
        "env": [{"name": "CUDA_VISIBLE_DEVICES", "value": ""}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if command:
        container["command"] = command
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "securityContext": {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": uid != 0},
        "containers": [container],
    }
    if claim:
        container["volumeMounts"] = [{"name": "shared", "mountPath": MOUNT}]
        spec["volumes"] = [{"name": "shared", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@dataclass
class PodResult:
    """How a pod ended."""

    phase: str
    logs: str
    exit_code: int | None


class PodRunner:
    """Creates pods in one namespace and waits for them."""

    def __init__(self, api: Any, namespace: str) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> str:
        """Create the pod; return its name."""
        return str(self.core.create_namespaced_pod(self.namespace, body).metadata.name)

    def wait(self, name: str, predicate: Any, timeout: float, what: str) -> Any:
        """The pod once ``predicate(pod)`` holds (watched, with a deadline)."""
        return kwait.until(
            self.core.list_namespaced_pod, predicate, self.namespace, timeout=timeout, what=what, **kwait.named(name)
        )

    def run(self, body: dict[str, Any], timeout: float = 300.0) -> PodResult:
        """Create the pod and wait until it Succeeded or Failed; its phase, logs and exit code."""
        name = self.create(body)
        pod = self.wait(name, lambda p: p.status.phase in DONE, timeout, f"pod {name} Succeeded or Failed")
        return PodResult(pod.status.phase, self.logs(name), _exit_code(pod))

    def logs(self, name: str, container: str = "step") -> str:
        """The log of the pod's ``container``."""
        return str(self.core.read_namespaced_pod_log(name, self.namespace, container=container))

    def follow_until(self, name: str, needle: str | re.Pattern[str], timeout: float, container: str = "step") -> str:
        """Follow the pod's log (a stream, not polling) until a line contains ``needle`` (a regular expression when
        it is a ``re.Pattern``); that line.
        """
        stream = self.core.read_namespaced_pod_log(
            name, self.namespace, container=container, follow=True, _preload_content=False, _request_timeout=timeout
        )
        try:
            for raw in stream.stream():
                for line in raw.decode(errors="replace").splitlines():
                    if needle.search(line) if isinstance(needle, re.Pattern) else needle in line:
                        return line
        finally:
            stream.release_conn()
        raise AssertionError(f"pod {name} ended its log without a line containing {needle!r}")

    def wait_deleted(self, name: str, timeout: float) -> None:
        """Return once the pod is gone (watched, with a deadline)."""
        kwait.gone(self.core.list_namespaced_pod, name, self.namespace, timeout=timeout)


def _exit_code(pod: Any) -> int | None:
    for status in pod.status.container_statuses or []:
        if status.state and status.state.terminated:
            return int(status.state.terminated.exit_code)
    return None


def provision_static(node: Any, namespace: str, name: str, base: Path) -> Path:
    """``sharedvol provision --static`` for real; the claim's directory on the node."""
    out = subprocess.run(
        [
            sys.executable, "-m", "pipelines.cli", "provision", name, "-n", namespace, "--static",
            "--host-path", str(base), "--node", nodeconfig.NODE_NAME, "--size", "1Gi",
            "--kubeconfig", str(node.kubeconfig), "--timeout", "60",
        ],
        cwd=cp.REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # provision handed the directory (made root:root 0755 by the kubelet) to the steps' user, uid 1000
    assert f"volume root: handed to 1000:1000, mode 0775, by pod sharedvol-prepare-{name} in " in out.stdout
    return base / namespace / name
