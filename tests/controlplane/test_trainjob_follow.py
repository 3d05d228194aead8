"""The TrainJob variant's train step against a real API server with Trainer v2.0.0's CRDs: it creates the TrainJob as
KFP's pipeline-runner with only the Role of k8s/trainjob-rbac, reports the pods and each condition, and ends as the
TrainJob does. No Trainer controller runs here: the test sets the TrainJob's status conditions as Trainer v2.0.0 does
(status subresource), and makes the JobSet's pods itself (kwok runs them once their scheduling gate is lifted).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, config, watch

from pipelines import errors, trainjob, trainjob_follow, trainjob_launch
from rig.cluster import ClusterHandle
from rig.paths import REPO
from steps import params
from storage import errors as storage_errors
from tests.controlplane import trainer

RUNNER = "pipeline-runner"  # KFP's service account of the steps
GATE = "sharedvol.io/hold"
SETTINGS = trainjob_follow.FollowSettings(timeout_s=120, window_s=1)
WAIT_S = 60.0


@pytest.fixture(scope="module")
def trainer_crds(cluster: ClusterHandle, api: Any) -> Iterator[ClusterHandle]:
    with trainer.crds_installed(cluster, api, trainer.manifests()) as installed:
        yield installed


def plan(namespace: str) -> trainjob.TrainJobPlan:
    return trainjob.TrainJobPlan(
        name=trainjob.name_for("0b4f5c1e-7d1a-4c55-9a0e-3f6e2d8c9b10"),
        namespace=namespace,
        image="sharedvol.local/steps:1",
        workers=2,
        claim="shared-r1",
        mount_path="/mnt/shared",
        run_dir="/mnt/shared/runs/r1",
        data_root="/mnt/shared/data/synthetic",
        values={name: getattr(params.DEFAULTS, name) for name in params.TRAINING},
        gpus_per_worker=1,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    )


def created(p: trainjob.TrainJobPlan) -> str:
    """The step's first line once it made the TrainJob of ``plan``."""
    return (
        f"TrainJob {p.name} created in {p.namespace}: 2 workers of sharedvol.local/steps:1, 1 GPU each, "
        "claim shared-r1 at /mnt/shared"
    )


def runner_api(cluster: ClusterHandle, api: Any, namespace: str, *, with_role: bool = True) -> Any:
    """A client of ServiceAccount ``namespace/pipeline-runner``, bound (``with_role``) to k8s/trainjob-rbac's Role."""
    if with_role:
        rbac = client.RbacAuthorizationV1Api(api)
        role, binding = trainer.objects(REPO / "k8s" / "trainjob-rbac" / "rbac.yaml")
        for obj in (role, binding):
            obj["metadata"]["namespace"] = namespace
        binding["subjects"][0]["namespace"] = namespace
        rbac.create_namespaced_role(namespace, role)
        rbac.create_namespaced_role_binding(namespace, binding)
    return config.new_client_from_config(str(cluster.service_account_kubeconfig(namespace, RUNNER)))


class Step:
    """The train step's launch (create, then follow) running in a thread; its progress lines and its end, in order."""

    def __init__(self, api: Any, the_plan: trainjob.TrainJobPlan) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: list[str] = []
        self.end: queue.Queue[tuple[str, Any]] = queue.Queue()

        def run() -> None:
            try:
                job = trainjob_launch.launch(api, the_plan, settings=SETTINGS, progress=self.lines.put)
                self.end.put(("returned", job))
            except Exception as e:  # the step's failure is what the test checks
                self.end.put(("raised", e))

        threading.Thread(target=run, daemon=True).start()

    def says(self, line: str) -> list[str]:
        """Every line up to ``line`` (waiting for it up to WAIT_S seconds)."""
        while line not in self.said:
            try:
                self.said.append(self.lines.get(timeout=WAIT_S))
            except queue.Empty:
                raise AssertionError(f"the step never said {line!r}; it said {self.said}") from None
        return self.said

    def ends(self) -> tuple[str, Any]:
        try:
            outcome = self.end.get(timeout=WAIT_S)
        except queue.Empty:
            raise AssertionError(f"the step did not end; it said {self.said}") from None
        while not self.lines.empty():
            self.said.append(self.lines.get())
        return outcome


def set_condition(api: Any, namespace: str, name: str, kind: str, reason: str, message: str) -> None:
    """Set condition ``kind`` True on the TrainJob's status, as Trainer v2.0.0 copies it from the JobSet's."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now}
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        trainjob.GROUP, trainjob.VERSION, namespace, trainjob.PLURAL, name, {"status": {"conditions": [condition]}}
    )


def make_pods(api: Any, namespace: str, name: str, workers: int) -> None:
    """The JobSet's pods as it names and labels them, held back from scheduling by a gate."""
    core = client.CoreV1Api(api)
    for i in range(workers):
        pod = {
            "metadata": {"name": f"{name}-node-0-{i}", "labels": {trainjob.POD_LABEL: name}},
            "spec": {
                "schedulingGates": [{"name": GATE}],
                "containers": [{"name": "node", "image": "sharedvol.local/steps:1"}],
            },
        }
        core.create_namespaced_pod(namespace, pod)


def release_pods(api: Any, namespace: str, name: str, workers: int) -> None:
    """Lift the gates: the scheduler binds the pods to kwok's nodes, which run them."""
    core = client.CoreV1Api(api)
    for i in range(workers):
        core.patch_namespaced_pod(f"{name}-node-0-{i}", namespace, {"spec": {"schedulingGates": None}})


def in_order(said: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` appear in ``said`` in that order (other lines may come between)."""
    rest = iter(said)
    return all(line in rest for line in wanted)


def test_the_step_creates_the_trainjob_reports_its_pods_and_succeeds_on_complete(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    p = plan(namespace)
    step = Step(runner_api(trainer_crds, api, namespace), p)
    step.says(created(p))
    make_pods(api, namespace, p.name, 2)
    step.says(f"TrainJob {p.name}: 0/2 pods running (2 Pending)")
    release_pods(api, namespace, p.name, 2)
    step.says(f"TrainJob {p.name}: 2/2 pods running")
    set_condition(api, namespace, p.name, "Complete", "AllJobsCompleted", "jobset completed successfully")
    outcome, job = step.ends()

    assert outcome == "returned", job
    assert [c["type"] for c in job["status"]["conditions"]] == ["Complete"]
    assert step.said[-1] == f"TrainJob {p.name}: Complete True (AllJobsCompleted: jobset completed successfully)"
    assert in_order(step.said, [created(p), f"TrainJob {p.name}: 0/2 pods running (2 Pending)"])
    stored = client.CustomObjectsApi(api).get_namespaced_custom_object(
        trainjob.GROUP, trainjob.VERSION, namespace, trainjob.PLURAL, p.name
    )
    assert stored["spec"]["podSpecOverrides"] == trainjob.trainjob(p)["spec"]["podSpecOverrides"]  # nothing pruned


def test_the_step_fails_with_one_line_naming_the_trainjob_and_the_failed_conditions_reason_and_message(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    p = plan(namespace)
    step = Step(runner_api(trainer_crds, api, namespace), p)
    step.says(created(p))
    set_condition(api, namespace, p.name, "Failed", "FailedJobs", "jobset failed due to one or more job failures")
    outcome, error = step.ends()

    assert outcome == "raised" and isinstance(error, errors.RunFailedError)
    assert str(error) == (
        f"TrainJob {p.name} failed: FailedJobs: jobset failed due to one or more job failures: "
        f"see kubectl describe trainjob {p.name} and its pods' logs (jobset.sigs.k8s.io/jobset-name={p.name})"
    )
    assert step.said[-1] == (
        f"TrainJob {p.name}: Failed True (FailedJobs: jobset failed due to one or more job failures)"
    )


def test_a_retried_step_follows_the_trainjob_its_first_attempt_made_instead_of_making_another(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    p = plan(namespace)
    runner = runner_api(trainer_crds, api, namespace)
    first = Step(runner, p)
    first.says(created(p))
    set_condition(api, namespace, p.name, "Complete", "AllJobsCompleted", "jobset completed successfully")
    assert first.ends()[0] == "returned"

    second = Step(runner, p)
    outcome, _ = second.ends()

    assert outcome == "returned"
    assert second.said == [
        f"TrainJob {p.name} exists (made by an earlier attempt of this step): following it",
        f"TrainJob {p.name}: Complete True (AllJobsCompleted: jobset completed successfully)",
    ]
    listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
        trainjob.GROUP, trainjob.VERSION, namespace, trainjob.PLURAL
    )
    assert [o["metadata"]["name"] for o in listing["items"]] == [p.name]


def test_the_step_fails_when_the_trainjob_is_deleted_before_it_finished(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    p = plan(namespace)
    step = Step(runner_api(trainer_crds, api, namespace), p)
    step.says(created(p))
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        trainjob.GROUP, trainjob.VERSION, namespace, trainjob.PLURAL, p.name
    )
    outcome, error = step.ends()

    assert outcome == "raised" and isinstance(error, errors.RunFailedError)
    assert error.message == f"TrainJob {p.name} was deleted before it finished"


def test_a_service_account_without_the_role_is_refused_with_the_role_that_fixes_it(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    p = plan(namespace)
    step = Step(runner_api(trainer_crds, api, namespace, with_role=False), p)
    outcome, error = step.ends()

    assert outcome == "raised" and isinstance(error, storage_errors.ForbiddenError)
    assert error.message.startswith(f"not allowed to create TrainJob {namespace}/{p.name} (")
    assert error.hint == trainjob_follow.RBAC_HINT
    assert step.said == []


def test_the_step_gives_up_at_its_deadline_saying_what_it_last_saw_of_the_trainjob(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    p = plan(namespace)
    runner = runner_api(trainer_crds, api, namespace)
    trainjob_launch.create(runner, p, progress=lambda line: None)
    make_pods(api, namespace, p.name, 2)
    settings = trainjob_follow.FollowSettings(timeout_s=2, window_s=1)

    with pytest.raises(errors.RunTimeoutError) as e:
        trainjob_follow.follow(runner, namespace, p.name, 2, settings=settings)

    assert str(e.value) == (
        f"TrainJob {p.name} did not finish in 2 s; last seen: no condition, 0/2 pods running (2 Pending): "
        f"it may still run: kubectl get trainjob {p.name} -n {namespace}; delete it to stop it"
    )


def test_a_trainjob_owned_by_the_train_steps_pod_goes_when_the_pod_goes(
    trainer_crds: ClusterHandle, api: Any, namespace: str
) -> None:
    # When a succeeded run's Workflow TTL deletes the step's pod, the TrainJob (and so its pods, which hold the run's
    # claim) goes too: Kubernetes' garbage collector, not the step, deletes it.
    core = client.CoreV1Api(api)
    step_pod = core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "train-step"}, "spec": {"containers": [{"name": "main", "image": "step"}]}},
    )
    p = dataclasses.replace(plan(namespace), owner=(step_pod.metadata.name, step_pod.metadata.uid))
    runner = runner_api(trainer_crds, api, namespace)
    trainjob_launch.create(runner, p, progress=lambda line: None)
    custom = client.CustomObjectsApi(api)
    args = (trainjob.GROUP, trainjob.API_VERSION.split("/")[1], namespace, "trainjobs")
    [made] = custom.list_namespaced_custom_object(*args, field_selector=f"metadata.name={p.name}")["items"]
    assert made["metadata"]["ownerReferences"][0]["uid"] == step_pod.metadata.uid

    core.delete_namespaced_pod("train-step", namespace, grace_period_seconds=0)

    _gone(custom, args, p.name, timeout=WAIT_S)


def _gone(custom: Any, args: tuple[str, ...], name: str, timeout: float) -> None:
    """Return once the custom object ``name`` of ``args`` (group, version, namespace, plural) is deleted: listed,
    then watched for its DELETED event until the deadline."""
    selector = f"metadata.name={name}"
    listing = custom.list_namespaced_custom_object(*args, field_selector=selector)
    if not listing["items"]:
        return
    w = watch.Watch()
    for event in w.stream(
        custom.list_namespaced_custom_object, *args, field_selector=selector,
        resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=int(timeout),
    ):  # fmt: skip
        if event["type"] == "DELETED":
            w.stop()
            return
    raise AssertionError(f"TrainJob {name} was not deleted in {timeout:.0f} s")
