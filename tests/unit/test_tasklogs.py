"""Which pod holds a task's log on a real KFP: KFP's run label and Argo's node-name annotation (pipelines.tasklogs)."""

from __future__ import annotations

import datetime as dt

from kubernetes import client

from pipelines import tasklogs


def pod(name: str, node_name: str, minute: int) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            annotations={tasklogs.NODE_NAME: node_name},
            creation_timestamp=dt.datetime(2026, 11, 30, 3, minute, tzinfo=dt.UTC),
        )
    )


def test_the_executor_pod_of_the_task_is_chosen_and_its_driver_pod_is_not() -> None:
    pods = [
        pod("wf-system-container-driver-1", "wf.root.prepare-data-driver", 1),
        pod("wf-system-container-impl-2", "wf.root.prepare-data.executor", 2),
        pod("wf-system-container-impl-3", "wf.root.train-resnet.executor", 3),
    ]

    assert tasklogs.executor_pod(pods, "prepare-data").metadata.name == "wf-system-container-impl-2"


def test_a_retried_task_gives_its_newest_attempt() -> None:
    pods = [
        pod("wf-impl-attempt-1", "wf.root.train-resnet.executor(0)", 5),
        pod("wf-impl-attempt-2", "wf.root.train-resnet.executor(1)", 9),
    ]

    assert tasklogs.executor_pod(pods, "train-resnet").metadata.name == "wf-impl-attempt-2"


def test_a_task_inside_a_nested_dag_is_found_and_a_task_whose_name_only_ends_alike_is_not() -> None:
    pods = [
        pod("wf-impl-1", "wf.root.inner-dag.test-resnet.executor", 1),
        pod("wf-impl-2", "wf.root.pre-test-resnet.executor", 2),
    ]

    assert tasklogs.executor_pod(pods, "test-resnet").metadata.name == "wf-impl-1"
    assert tasklogs.executor_pod(pods, "produce-metrics") is None


def test_a_pod_without_a_creation_time_counts_as_the_oldest_attempt() -> None:
    undated = pod("wf-impl-undated", "wf.root.train-resnet.executor(1)", 0)
    undated.metadata.creation_timestamp = None
    pods = [undated, pod("wf-impl-dated", "wf.root.train-resnet.executor(0)", 5)]

    assert tasklogs.executor_pod(pods, "train-resnet").metadata.name == "wf-impl-dated"
    assert tasklogs.executor_pod([undated], "train-resnet").metadata.name == "wf-impl-undated"
