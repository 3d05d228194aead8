"""A resume file with a matching digest but not this run's state: refused in one line before mmengine loads it,
nothing trained, nothing published (:mod:`steps.resumecheck`); a change of settings asked for takes effect."""

from __future__ import annotations

import copy
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from steps import checkpoint, config, dataplane, errors, safeload, train_resnet
from tests.ml.training import BATCH, LR, republish, train


def published(run_dir: Path, part: str) -> bytearray:
    layout = dataplane.RunLayout(str(run_dir))
    m = checkpoint.require_manifest(layout.checkpoint)
    return bytearray((run_dir / "checkpoints" / getattr(m, part).name).read_bytes())


def resume_state(run_dir: Path) -> dict[str, Any]:
    return copy.deepcopy(safeload.resume_from_buffer(published(run_dir, "resume"), "resume"))


def resume_bytes(state: dict[str, Any]) -> bytes:
    safeload.encode_message_hub(state)
    out = io.BytesIO()
    safeload.state_writer(state)(out)
    return out.getvalue()


def changed_copy(one_epoch: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    state = resume_state(run_dir)
    change(state)
    republish(run_dir, "resume", resume_bytes(state))
    return run_dir


def latest_epoch(run_dir: Path) -> int:
    return checkpoint.require_manifest(dataplane.RunLayout(str(run_dir)).checkpoint).epoch


def test_a_resume_from_weights_that_are_not_the_models_is_refused_and_publishes_nothing(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    weights, metadata = safeload.weights_from_buffer(published(run_dir, "weights"), "weights")
    head_only = {k: v.clone() for k, v in weights.items() if k.startswith("head.")}
    republish(run_dir, "weights", safeload.serialize_weights(head_only, metadata))

    with pytest.raises(errors.IntegrityError, match=r"is not this model's weights: of its \d+ tensors \d+ missing"):
        train(run_dir, dataset, 2)
    assert latest_epoch(run_dir) == 1


def _momentum_zero(state: dict[str, Any]) -> None:
    for group in state["optimizer"]["param_groups"]:
        group["momentum"] = 0.0


def _seed_777(state: dict[str, Any]) -> None:
    state["meta"]["seed"] = 777


def _momentum_buffer_of_another_shape(state: dict[str, Any]) -> None:
    state["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(3)


def _one_parameter_short(state: dict[str, Any]) -> None:
    group = state["optimizer"]["param_groups"][0]
    group["params"] = group["params"][:-1]


def _nan_momentum(state: dict[str, Any]) -> None:
    state["optimizer"]["state"][0]["momentum_buffer"][0] = float("nan")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _momentum_zero,
            r"its optimizer was set otherwise than this run's settings give: momentum 0\.0 \(this run: 0\.9",
        ),
        (_seed_777, r"holds the state of a run with seed 777, its manifest says 0"),
        (_momentum_buffer_of_another_shape, r"'momentum_buffer' of parameter 0 is \(3,\), the parameter \(64, 3, 3"),
        (_one_parameter_short, r"its parameter group 0 does not hold this run's \d+ parameters"),
        (_nan_momentum, r"'momentum_buffer' of parameter 0 is not finite"),
    ],
    ids=["momentum", "seed", "buffer-shape", "group-size", "nan-buffer"],
)
def test_a_resume_state_that_is_not_this_runs_is_refused_in_one_line_and_publishes_nothing(
    one_epoch: Path, dataset: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    run_dir = changed_copy(one_epoch, tmp_path, change)

    with pytest.raises(errors.IntegrityError, match=message) as refused:
        train(run_dir, dataset, 2)
    assert "\n" not in refused.value.message
    assert latest_epoch(run_dir) == 1


def test_a_weight_decay_changed_on_purpose_replaces_the_resume_states_and_is_what_the_next_epoch_saves(
    one_epoch: Path, dataset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch, run_dir)
    cfg = config.TrainConfig(
        run_dir=str(run_dir), data_root=str(dataset), epochs=2, batch_size=BATCH, lr=LR, device="cpu",
        cfg_options={"optim_wrapper.optimizer.weight_decay": 5e-4}, allow_changed_settings=True,
    )  # fmt: skip

    summary = train_resnet.train(cfg)

    assert summary.resumed_from_epoch == 1 and summary.epochs == 2
    [group] = resume_state(run_dir)["optimizer"]["param_groups"]
    assert group["weight_decay"] == 5e-4 and group["momentum"] == 0.9
