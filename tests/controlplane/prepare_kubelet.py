"""The kubelet's part for sharedvol's prepare pods on the control plane's kwok nodes.

kwok moves a scheduled pod to Running and leaves it there; a kubelet would run the pod's chown and chmod and
report how it went. :func:`playing_kubelet` does that report from the test: a thread watches the namespace's
prepare pods and, once kwok has one Running, acts on it once as the kubelet would (by default: status
Succeeded, exit code 0), recording each pod it acted on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, watch

SELECTOR = "app.kubernetes.io/component=prepare"


def finished_status(pod: Any, exit_code: int = 0, message: str = "") -> dict[str, Any]:
    """The status a kubelet writes when the pod's one container ended with ``exit_code`` (and this log tail)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    container = pod.spec.containers[0]
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "message": message,
        "startedAt": now,
        "finishedAt": now,
    }
    return {
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}],
            "containerStatuses": [container_status(container, {"terminated": terminated})],
        }
    }


def container_status(container: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The status of a pod's ``container`` that is not running, in ``state`` (``{"terminated": ...}``...)."""
    return {
        "name": container.name,
        "image": container.image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": state,
    }


Act = Callable[[Any, Any], None]


def succeed(core: Any, pod: Any) -> None:
    """The container ran and exited 0: phase Succeeded."""
    core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, finished_status(pod))


def fail(exit_code: int, log_tail: str) -> Act:
    """The container exited ``exit_code`` having logged ``log_tail`` (FallbackToLogsOnError): phase Failed."""

    def act(core: Any, pod: Any) -> None:
        body = finished_status(pod, exit_code, log_tail)
        core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    return act


def pull_failure_event(core: Any, pod: Any) -> None:
    """The kubelet could not pull the image: the Warning Event it posts (status left as kwok set it)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    image = pod.spec.containers[0].image
    m = pod.metadata
    core.create_namespaced_event(
        m.namespace,
        {
            "metadata": {"generateName": f"{m.name}."},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "namespace": m.namespace,
                "name": m.name,
                "uid": m.uid,
                "fieldPath": "spec.containers{prepare}",
            },
            "reason": "Failed",
            "message": f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack '
            f'image "docker.io/library/{image}": not found',
            "type": "Warning",
            "source": {"component": "kubelet", "host": pod.spec.node_name},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        },
    )


def waiting(reason: str) -> Act:
    """The kubelet could not pull the image: the container waits with ``reason`` (ErrImagePull, ImagePullBackOff)."""

    def act(core: Any, pod: Any) -> None:
        container = pod.spec.containers[0]
        message = f'Back-off pulling image "{container.image}"' if "BackOff" in reason else "pull access denied"
        status = container_status(container, {"waiting": {"reason": reason, "message": message}})
        body = {"status": {"containerStatuses": [status]}}  # the phase stays as kwok set it
        core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    return act


@contextlib.contextmanager
def playing_kubelet(api: Any, namespace: str, act: Act = succeed) -> Iterator[list[Any]]:
    """While in the block, ``act`` once on each Running prepare pod of ``namespace``; yields the pods acted on."""
    core = client.CoreV1Api(api)
    ended: list[Any] = []
    stop = threading.Event()
    failures: list[BaseException] = []

    def loop() -> None:
        done: set[str] = set()
        try:
            while not stop.is_set():
                w = watch.Watch()
                for event in w.stream(core.list_namespaced_pod, namespace, label_selector=SELECTOR, timeout_seconds=1):
                    pod = event["object"]
                    if event["type"] == "DELETED" or pod.metadata.uid in done or pod.status.phase != "Running":
                        continue
                    try:
                        act(core, pod)
                    except client.ApiException as e:
                        if e.status not in (404, 409):  # deleted or replaced meanwhile: nothing to report
                            raise
                    done.add(pod.metadata.uid)
                    ended.append(pod)
                    if stop.is_set():
                        w.stop()
        except BaseException as e:  # reported in the test's thread
            failures.append(e)

    thread = threading.Thread(target=loop, name=f"kubelet-{namespace}", daemon=True)
    thread.start()
    try:
        yield ended
    finally:
        stop.set()
        thread.join(timeout=30)
    if failures:
        raise AssertionError(f"the stand-in kubelet failed: {failures[0]!r}") from failures[0]
