"""The TrainJob step without a cluster: the follower's state machine (what it reports, when it ends) and the plan it
makes of the component's inputs. tests/controlplane/test_trainjob_follow.py runs it against a real API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines import errors, trainjob, trainjob_follow, trainjob_launch
from steps import params

NAME = "train-r1"


def job(*conditions: dict[str, str]) -> dict[str, Any]:
    """The TrainJob as the API server returns it, with ``conditions``."""
    return {"metadata": {"name": NAME}, "status": {"conditions": list(conditions)}}


def condition(kind: str, reason: str, message: str = "", status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


COMPLETE = condition("Complete", "AllJobsCompleted", "jobset completed successfully")
FAILED = condition("Failed", "FailedJobs", "jobset failed due to one or more job failures")


def test_a_new_trainjob_without_conditions_reports_nothing_and_is_not_finished() -> None:
    seen = trainjob_follow.Seen(NAME, 2)

    assert seen.trainjob({"metadata": {"name": NAME}}) == []
    assert trainjob.finished({"metadata": {"name": NAME}}, NAME) is False


def test_each_condition_is_reported_once_with_its_status_reason_and_message() -> None:
    seen = trainjob_follow.Seen(NAME, 2)
    suspended = condition("Suspended", "Suspended", "TrainJob is suspended")

    first = seen.trainjob(job(suspended))
    again = seen.trainjob(job(suspended))
    resumed = seen.trainjob(job(condition("Suspended", "Resumed", "TrainJob is resumed", status="False")))
    done = seen.trainjob(job(condition("Suspended", "Resumed", "TrainJob is resumed", status="False"), COMPLETE))

    assert first == ["TrainJob train-r1: Suspended True (Suspended: TrainJob is suspended)"]
    assert again == []
    assert resumed == ["TrainJob train-r1: Suspended False (Resumed: TrainJob is resumed)"]
    assert done == ["TrainJob train-r1: Complete True (AllJobsCompleted: jobset completed successfully)"]


def test_a_condition_message_over_several_lines_is_reported_on_one() -> None:
    seen = trainjob_follow.Seen(NAME, 2)

    lines = seen.trainjob(job(condition("Failed", "FailedJobs", "job node-0\n  failed:\tBackoffLimitExceeded")))

    assert lines == ["TrainJob train-r1: Failed True (FailedJobs: job node-0 failed: BackoffLimitExceeded)"]


def test_the_complete_condition_ends_the_follow_with_success() -> None:
    assert trainjob.finished(job(COMPLETE), NAME) is True


def test_the_failed_condition_ends_the_follow_with_one_line_naming_the_trainjob_its_reason_and_message() -> None:
    with pytest.raises(errors.RunFailedError) as e:
        trainjob.finished(job(FAILED), NAME)

    assert str(e.value) == (
        "TrainJob train-r1 failed: FailedJobs: jobset failed due to one or more job failures: "
        "see kubectl describe trainjob train-r1 and its pods' logs (jobset.sigs.k8s.io/jobset-name=train-r1)"
    )
    assert "\n" not in str(e.value)


def test_no_pod_line_is_reported_before_the_first_pod_exists() -> None:
    seen = trainjob_follow.Seen(NAME, 2)

    assert seen.pod_phases([]) == []
    assert seen.pods == ""


def test_the_pods_are_reported_each_time_their_phases_change_and_only_then() -> None:
    seen = trainjob_follow.Seen(NAME, 2)

    said = [
        seen.pod_phases(["Pending"]),
        seen.pod_phases(["Pending", "Pending"]),
        seen.pod_phases(["Pending", "Pending"]),
        seen.pod_phases(["Running", "Pending"]),
        seen.pod_phases(["Running", "Running"]),
        seen.pod_phases(["Running", "Running"]),
        seen.pod_phases(["Succeeded", "Running"]),
        seen.pod_phases([]),
    ]

    assert said == [
        ["TrainJob train-r1: 0/2 pods running (1 Pending)"],
        ["TrainJob train-r1: 0/2 pods running (2 Pending)"],
        [],
        ["TrainJob train-r1: 1/2 pods running (1 Pending)"],
        ["TrainJob train-r1: 2/2 pods running"],
        [],
        ["TrainJob train-r1: 1/2 pods running (1 Succeeded)"],
        ["TrainJob train-r1: 0/2 pods running"],
    ]


@pytest.mark.parametrize(
    ("phases", "text"),
    [
        (["Running", "Running", "Running"], "3/3 pods running"),
        (["Failed", "Running", "Pending", "Failed"], "1/3 pods running (2 Failed, 1 Pending)"),
        (["Unknown"], "0/3 pods running (1 Unknown)"),
    ],
)
def test_the_pods_phases_read_as_running_out_of_the_workers_then_the_others_by_phase(
    phases: list[str], text: str
) -> None:
    assert trainjob_follow.describe_pods(phases, 3) == text


def inputs(**changes: Any) -> dict[str, Any]:
    """The TrainJob component's inputs as KFP hands them to its function."""
    values = {name: getattr(params.DEFAULTS, name) for name in params.TRAINING}
    values |= {
        "run_dir": "/mnt/shared/runs/0b4f",
        "data_root": "/mnt/shared/data/cifar10",
        "gpu_count": "2",
        "workers": 3,
        "image": "ghcr.io/acme/sharedvol:1.2.3",
        "claim": "run-0b4f-sharedvol",
        "mount_path": "/mnt/shared",
        "run_id": "0B4F5C1E-7d1a",
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "train_metrics": object(),
    }
    return values | changes


def test_the_components_inputs_make_the_plan_of_the_runs_trainjob_in_the_given_namespace() -> None:
    plan = trainjob_launch.plan_of(inputs(), "kubeflow")

    assert plan == trainjob.TrainJobPlan(
        name="train-0b4f5c1e-7d1a",
        namespace="kubeflow",
        image="ghcr.io/acme/sharedvol:1.2.3",
        workers=3,
        claim="run-0b4f-sharedvol",
        mount_path="/mnt/shared",
        run_dir="/mnt/shared/runs/0b4f",
        data_root="/mnt/shared/data/cifar10",
        values={name: getattr(params.DEFAULTS, name) for name in params.TRAINING},
        gpus_per_worker=2,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    )
    assert trainjob.trainjob(plan)["spec"]["trainer"]["numProcPerNode"] == 2


def test_a_run_dir_off_the_claim_in_the_inputs_is_refused_before_anything_is_created() -> None:
    plan = trainjob_launch.plan_of(inputs(run_dir="/tmp/runs/0b4f"), "kubeflow")

    with pytest.raises(errors.BadParameterError, match="--run-dir /tmp/runs/0b4f is not on the claim"):
        trainjob.trainjob(plan)


def test_the_step_runs_in_the_namespace_its_service_account_token_names(tmp_path: Path) -> None:
    mounted = tmp_path / "namespace"
    mounted.write_text("team-a\n")

    assert trainjob_launch.own_namespace(str(mounted)) == "team-a"


def test_outside_a_pod_the_step_stops_with_one_line_saying_it_has_no_namespace(tmp_path: Path) -> None:
    with pytest.raises(errors.BadParameterError) as e:
        trainjob_launch.own_namespace(str(tmp_path / "namespace"))

    assert str(e.value) == (
        f"cannot read this pod's namespace from {tmp_path / 'namespace'} (No such file or directory): "
        "the TrainJob step runs in a pod with its service account token mounted (KFP's default)"
    )


def test_the_trainjob_is_owned_by_the_train_steps_pod_kfp_names_in_its_environment() -> None:
    uid = "5f0c3b0e-2f6d-4c1a-9a57-0d6c1f2e3a4b"
    owner = trainjob_launch.own_pod(
        {"KFP_POD_NAME": "resnet18-cifar10-x7k2p-system-container-impl-1", "KFP_POD_UID": uid}
    )
    job = trainjob.trainjob(trainjob_launch.plan_of(inputs(), "kubeflow", owner))

    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "resnet18-cifar10-x7k2p-system-container-impl-1", "uid": uid}
    ]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"KFP_POD_NAME": "p", "KFP_POD_UID": ""},
        {"KFP_POD_NAME": "Bad Name", "KFP_POD_UID": "5f0c3b0e-2f6d-4c1a-9a57-0d6c1f2e3a4b"},
        {"KFP_POD_NAME": "p", "KFP_POD_UID": "not-a-uid"},
    ],
    ids=["unset", "no-uid", "bad-name", "bad-uid"],
)
def test_without_a_pod_name_and_uid_from_kfp_the_trainjob_has_no_owner(env: dict[str, str]) -> None:
    owner = trainjob_launch.own_pod(env)

    assert owner is None
    assert "ownerReferences" not in trainjob.trainjob(trainjob_launch.plan_of(inputs(), "kubeflow", owner))["metadata"]
