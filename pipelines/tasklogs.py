"""A task's log straight from Kubernetes, for when the KFP API names no pod and no KFP UI serves pod logs.

KFP 2.17's API gives no pod name for a task (only Argo node ids under ``child_tasks``) and the bare API server does
not serve the UI's ``/k8s/pod/logs``. Where ``sharedvol run`` has a Kubernetes client, the task's pod is found the
way KFP labels it: the label ``pipeline/runid=<run id>`` and Argo's annotation ``workflows.argoproj.io/node-name``
``<workflow>.<dag path>.<task>.executor`` (one pod per attempt of a retried task: the newest is read).
"""

from __future__ import annotations

import logging
from typing import Any

import urllib3
from kubernetes import client

log = logging.getLogger(__name__)

RUN_LABEL = "pipeline/runid"
NODE_NAME = "workflows.argoproj.io/node-name"
CONTAINER = "main"  # where KFP's launcher runs the component
TAIL_LINES = 400


def executor_pod(pods: list[client.V1Pod], task: str) -> client.V1Pod | None:
    """The newest pod among ``pods`` that ran ``task``'s component, or None."""
    suffix = f".{task}.executor"

    def ran_task(pod: client.V1Pod) -> bool:
        node = (pod.metadata.annotations or {}).get(NODE_NAME, "")
        return node.split("(", 1)[0].endswith(suffix)  # "...executor(0)": an attempt of a retried task

    mine = [p for p in pods if ran_task(p)]

    def age(pod: client.V1Pod) -> tuple[bool, Any]:  # a pod without a creation time counts as the oldest
        made = pod.metadata.creation_timestamp
        return made is not None, made

    return max(mine, key=age) if mine else None


def read(kube: client.ApiClient, namespace: str, run_id: str, task: str) -> str | None:
    """The last lines of the log of ``task``'s newest pod in run ``run_id``, or None when it cannot be read."""
    core = client.CoreV1Api(kube)
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=f"{RUN_LABEL}={run_id}").items
        pod = executor_pod(pods, task)
        if pod is None:
            log.debug("no pod of task %s in run %s", task, run_id)
            return None
        text: str = core.read_namespaced_pod_log(
            pod.metadata.name, namespace, container=CONTAINER, tail_lines=TAIL_LINES
        )
        return text
    except (client.ApiException, urllib3.exceptions.HTTPError, OSError) as e:
        log.debug("log of task %s in run %s not available: %s", task, run_id, e)
        return None
