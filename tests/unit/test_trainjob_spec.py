"""The TrainJob that runs train-resnet on several nodes (pipelines/trainjob.py): Kubeflow Trainer v2.0.0's fields."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pipelines import cli, errors, trainjob
from steps import params

VALUES = {"epochs": 3, "batch_size": 64, "lr": 0.05, "seed": 7, "device": "cpu", "amp": "off", "augment": "stock",
          "num_workers": 0}  # fmt: skip
PLAN = trainjob.TrainJobPlan(
    name="train-r1",
    namespace="runs",
    image="sharedvol.local/steps:1",
    workers=2,
    claim="shared-r1",
    mount_path="/mnt/shared",
    run_dir="/mnt/shared/runs/r1",
    data_root="/mnt/shared/data/synthetic",
    values=VALUES,
)
TRAIN = ["torchrun", "-m", "pipelines", "train", "--run-dir", "/mnt/shared/runs/r1",
         "--data-root", "/mnt/shared/data/synthetic", "--epochs", "3", "--batch-size", "64", "--lr", "0.05",
         "--seed", "7", "--device", "cpu", "--amp", "off", "--augment", "stock", "--num-workers", "0"]  # fmt: skip


def test_a_two_worker_cpu_trainjob_is_exactly_the_torch_runtime_with_the_claim_mounted_in_every_pod() -> None:
    assert trainjob.trainjob(PLAN) == {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "train-r1", "namespace": "runs", "labels": {"app.kubernetes.io/part-of": "sharedvol"}},
        "spec": {
            "runtimeRef": {
                "apiGroup": "trainer.kubeflow.org",
                "kind": "ClusterTrainingRuntime",
                "name": "torch-distributed",
            },
            "trainer": {"image": "sharedvol.local/steps:1", "command": TRAIN, "numNodes": 2, "numProcPerNode": 1},
            "podSpecOverrides": [
                {
                    "targetJobs": [{"name": "node"}],
                    "volumes": [{"name": "sharedvol", "persistentVolumeClaim": {"claimName": "shared-r1"}}],
                    "containers": [
                        {"name": "node", "volumeMounts": [{"name": "sharedvol", "mountPath": "/mnt/shared"}]}
                    ],
                }
            ],
        },
    }


def test_gpu_workers_ask_for_their_gpus_per_node_and_run_one_rank_per_gpu() -> None:
    spec = trainjob.trainjob(dataclasses.replace(PLAN, workers=4, gpus_per_worker=2))["spec"]["trainer"]

    assert spec["resourcesPerNode"] == {"limits": {"nvidia.com/gpu": 2}, "requests": {"nvidia.com/gpu": 2}}
    assert spec["numNodes"] == 4 and spec["numProcPerNode"] == 2


def test_the_node_selector_and_tolerations_go_into_every_workers_pod_beside_the_claim() -> None:
    tolerations = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)
    plan = dataclasses.replace(PLAN, node_selector={"nvidia.com/gpu.present": "true"}, tolerations=tolerations)

    (override,) = trainjob.trainjob(plan)["spec"]["podSpecOverrides"]

    assert override["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert override["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert override["targetJobs"] == [{"name": "node"}]


@pytest.mark.parametrize(
    ("run_id", "name"),
    [
        ("0b4f5c1e-7d1a-4c55-9a0e-3f6e2d8c9b10", "train-0b4f5c1e-7d1a-4c55-9a0e-3f6e2d8c9b"),
        ("Run_7", "train-run-7"),
        ("abcdefghijklmnopqrstuvwxyz0123456-89", "train-abcdefghijklmnopqrstuvwxyz0123456"),  # no "-" at the cut
    ],
)
def test_a_trainjob_is_named_after_its_run_as_a_dns_label_of_at_most_40_characters(run_id: str, name: str) -> None:
    assert trainjob.name_for(run_id) == name
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", name)


def test_a_run_id_without_a_letter_or_digit_cannot_name_a_trainjob() -> None:
    with pytest.raises(errors.BadParameterError, match="run id '--' cannot name a TrainJob"):
        trainjob.name_for("--")


def test_the_trainjob_passes_every_training_parameter_of_the_table_by_its_flag() -> None:
    argv = trainjob.train_arguments(PLAN)

    flags = [params.meta(f).flag for f in params.fields(params.StepParams, params.TRAINING)]
    assert argv[4::2] == flags
    assert argv[5::2] == [str(VALUES[name]) for name in params.TRAINING]


@pytest.mark.parametrize("workers", [1, 0, -2])
def test_fewer_than_two_workers_are_refused_pointing_at_the_single_step(workers: int) -> None:
    with pytest.raises(errors.BadParameterError, match=f"at least 2 workers, got {workers}") as e:
        trainjob.trainjob(dataclasses.replace(PLAN, workers=workers))
    assert "leave --workers at 1" in str(e.value)


def test_a_run_directory_off_the_mounted_claim_is_refused() -> None:
    with pytest.raises(errors.BadParameterError, match="--run-dir /tmp/r1 is not on the claim mounted at /mnt/shared"):
        trainjob.trainjob(dataclasses.replace(PLAN, run_dir="/tmp/r1"))


def test_data_off_the_mounted_claim_is_refused() -> None:
    with pytest.raises(errors.BadParameterError, match="--data-root /mnt/sharedx/d is not on the claim"):
        trainjob.trainjob(dataclasses.replace(PLAN, data_root="/mnt/sharedx/d"))


def test_a_missing_training_parameter_is_refused_naming_it() -> None:
    values = {k: v for k, v in VALUES.items() if k != "seed"}

    with pytest.raises(errors.BadParameterError, match="lacks training parameters: seed"):
        trainjob.trainjob(dataclasses.replace(PLAN, values=values))


def test_a_negative_gpu_count_is_refused() -> None:
    with pytest.raises(errors.BadParameterError, match="GPUs per worker must be 0 or more, got -1"):
        trainjob.trainjob(dataclasses.replace(PLAN, gpus_per_worker=-1))


def status(*conditions: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": "train-r1"}, "status": {"conditions": list(conditions)}}


def test_a_trainjob_without_conditions_or_only_created_is_not_finished() -> None:
    assert trainjob.finished({"metadata": {"name": "train-r1"}}, "train-r1") is False
    created = status({"type": "Created", "status": "True", "reason": "JobsCreationSucceeded"})
    assert trainjob.finished(created, "train-r1") is False


def test_a_trainjob_whose_complete_condition_is_true_is_finished() -> None:
    assert trainjob.finished(status({"type": "Complete", "status": "True", "reason": "JobSetCompleted"}), "train-r1")


def test_a_suspended_trainjob_is_not_finished() -> None:
    suspended = status({"type": "Suspended", "status": "True", "reason": "Suspended"})
    assert trainjob.finished(suspended, "train-r1") is False


def test_a_failed_trainjob_is_refused_with_its_reason_and_message() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "JobSetFailed", "message": "jobset failed: node-0 backoff"}

    with pytest.raises(errors.RunFailedError) as e:
        trainjob.finished(status({"type": "Created", "status": "True"}, failed), "train-r1")

    assert (
        str(e.value).splitlines()[0].startswith("TrainJob train-r1 failed: JobSetFailed: jobset failed: node-0 backoff")
    )


def test_the_trainjob_command_is_a_sharedvol_train_the_cli_parses_to_the_plan_s_values() -> None:
    torchrun, dash_m, module, *argv = trainjob.command(PLAN)

    parsed = cli.build_parser().parse_args(argv)

    assert (torchrun, dash_m, module) == ("torchrun", "-m", "pipelines")
    assert parsed.func is not None and argv[0] == "train"
    assert (parsed.run_dir, parsed.data_root) == (PLAN.run_dir, PLAN.data_root)
    assert {name: getattr(parsed, name) for name in params.TRAINING} == VALUES


JUNK: list[object] = [
    None,
    "Complete",
    [],
    {"status": "Complete"},
    {"status": {"conditions": "Complete"}},
    {"status": {"conditions": {"type": "Complete", "status": "True"}}},
    {"status": {"conditions": [None, 7, "Complete", ["Complete", "True"]]}},
    {"status": {"conditions": [{"type": ["Complete"], "status": True}]}},
]


@pytest.mark.parametrize("obj", JUNK, ids=range(len(JUNK)))
def test_a_trainjob_of_any_other_shape_has_no_conditions_and_is_not_finished(obj: object) -> None:
    assert trainjob.conditions(obj) == [] or all(c.type == "?" for c in trainjob.conditions(obj))
    assert trainjob.finished(obj, "train-r1") is False  # type: ignore[arg-type]


def test_a_failed_condition_is_one_bounded_printable_line_of_the_cluster_text() -> None:
    failed = {"type": "Failed", "status": "True", "reason": "Bad\x1b[2J\nReason", "message": "x\n" * 100_000}

    with pytest.raises(errors.RunFailedError) as e:
        trainjob.finished(status(failed), "train-r1")

    line = e.value.message
    assert "\n" not in line and line.startswith("TrainJob train-r1 failed: Bad\\x1b[2J Reason: x x x")
    assert len(line) < trainjob.REASON_CHARS + trainjob.MESSAGE_CHARS + 60 and "\x1b" not in line


def test_only_the_first_conditions_are_read() -> None:
    many = [{"type": f"T{i}", "status": "False"} for i in range(10_000)] + [{"type": "Complete", "status": "True"}]

    assert len(trainjob.conditions(status(*many))) == trainjob.MAX_CONDITIONS
    assert trainjob.finished(status(*many), "train-r1") is False
