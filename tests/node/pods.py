"""Pods on the real node for tests: specs like the pipeline's (the step image, uid 1000, the claim at /mnt/shared),
run to completion with a watch and a deadline, their logs returned."""

from __future__ import annotations

import codecs
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
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

        A stream ends when its container does; a container that is started again (restartPolicy OnFailure, as a
        TrainJob's workers have) is followed on, within the same deadline. Lines are matched whole, however the
        stream cuts its chunks.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            restarts = _restarts(self.core.read_namespaced_pod(name, self.namespace), container)
            found = self._follow_once(name, needle, left, container)
            if found is not None:
                return found
            pod = self.wait(
                name,
                partial(_again_or_done, container=container, before=restarts),
                max(1.0, deadline - time.monotonic()),
                f"pod {name}'s {container} container started again or the pod ended",
            )
            if pod.status.phase in DONE:
                break
        pod = self.core.read_namespaced_pod(name, self.namespace)
        state = [s for s in pod.status.container_statuses or [] if s.name == container]
        tail = self.logs(name, container=container).splitlines()[-20:]
        raise AssertionError(
            f"pod {name} ({pod.status.phase}) ended its log without a line containing {needle!r}; "
            f"container: {state}; last lines: {tail}"
        )

    def _follow_once(self, name: str, needle: str | re.Pattern[str], timeout: float, container: str) -> str | None:
        """The first line of one log stream of the container that contains ``needle``; None when the stream ends."""
        stream = self.core.read_namespaced_pod_log(
            name, self.namespace, container=container, follow=True, _preload_content=False, _request_timeout=timeout
        )
        try:
            return first_line(stream.stream(), needle)
        finally:
            stream.release_conn()

    def wait_deleted(self, name: str, timeout: float) -> None:
        """Return once the pod is gone (watched, with a deadline)."""
        kwait.gone(self.core.list_namespaced_pod, name, self.namespace, timeout=timeout)


def first_line(chunks: Iterable[bytes], needle: str | re.Pattern[str]) -> str | None:
    """The first whole line of a log stream's ``chunks`` that contains ``needle``; None when there is none. A chunk
    may end inside a line: the line is matched once its end arrives (or the stream ends)."""
    decoder, pending = codecs.getincrementaldecoder("utf-8")(errors="replace"), ""
    for raw in chunks:
        *lines, pending = (pending + decoder.decode(raw)).split("\n")
        for line in lines:
            if _contains(line, needle):
                return line
    return pending if pending and _contains(pending, needle) else None


def _contains(line: str, needle: str | re.Pattern[str]) -> bool:
    return bool(needle.search(line)) if isinstance(needle, re.Pattern) else needle in line


def _status_of(pod: Any, container: str) -> Any:
    return next((s for s in pod.status.container_statuses or [] if s.name == container), None)


def _restarts(pod: Any, container: str) -> int:
    """How many times the pod's ``container`` was started again (0 before it first runs)."""
    status = _status_of(pod, container)
    return int(status.restart_count) if status else 0


def _running(pod: Any, container: str) -> bool:
    status = _status_of(pod, container)
    return bool(status and status.state and status.state.running)


def _again_or_done(pod: Any, container: str, before: int) -> bool:
    """The pod ended, or its ``container`` runs again after more than ``before`` restarts."""
    return pod.status.phase in DONE or (_restarts(pod, container) > before and _running(pod, container))


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
