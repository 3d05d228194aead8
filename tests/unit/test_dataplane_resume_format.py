"""The resume file: mmengine's training state as safetensors tensors plus a small allow-listed pickled rest."""

from __future__ import annotations

import ctypes
import io
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from steps import checkpoint, errors, safeload
from tests.stepdocs import SETTINGS
from tests.unit.test_dataplane_safeload import Payload, mmengine_shaped_checkpoint


def written(state: dict[str, Any], tmp_path: Path) -> bytearray:
    buf = io.BytesIO()
    safeload.state_writer(state)(buf)
    return bytearray(buf.getvalue())


def address_range(buf: bytearray) -> range:
    start = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    return range(start, start + len(buf))


def test_the_training_state_round_trips_with_its_tensors_as_views_of_the_verified_buffer(tmp_path: Path) -> None:
    ckpt = mmengine_shaped_checkpoint()
    momentum = torch.randn(64, 3, 3, 3)
    ckpt["optimizer"]["state"] = {0: {"momentum_buffer": momentum}, 1: {"step": torch.tensor(5.0)}}
    ckpt["state_dict"] = {}
    safeload.encode_message_hub(ckpt)
    buf = written(ckpt, tmp_path)

    loaded = safeload.resume_from_buffer(buf, "state.resume.safetensors")

    state = loaded["optimizer"]["state"]
    assert list(state) == [0, 1]  # integer keys, as torch's optimizers store them
    assert torch.equal(state[0]["momentum_buffer"], momentum) and state[1]["step"].item() == 5.0
    assert state[0]["momentum_buffer"].data_ptr() in address_range(buf)  # a view: not copied out of the buffer
    assert loaded["optimizer"]["param_groups"] == [{"lr": 0.1, "params": [0]}]
    assert loaded["meta"]["dataset_meta"]["classes"] == ("a", "b")  # a tuple stays a tuple
    assert loaded["message_hub"]["log_scalars"]["train/loss"].mean() == pytest.approx(0.375)
    assert loaded["param_schedulers"] == [{"milestones": {1: 1}, "last_step": 1}]


def test_the_resume_file_is_a_safetensors_file_whose_only_pickle_is_the_small_rest(tmp_path: Path) -> None:
    state = {"state_dict": {}, "optimizer": {"state": {0: {"momentum_buffer": torch.ones(1000, 100)}}}}
    buf = written(state, tmp_path)

    tensors = safetensors.torch.load(bytes(buf))  # the library's own reader takes it

    assert torch.equal(tensors["0"], torch.ones(1000, 100))
    assert tensors[safeload.SKELETON].numel() < 2000  # the momentum is not in the pickle


def test_a_tensor_held_twice_loads_as_one_and_views_empty_and_unusual_tensors_round_trip(tmp_path: Path) -> None:
    shared, base = torch.arange(6.0), torch.arange(12.0).reshape(3, 4)
    state = {
        **{k: v for k, v in mmengine_shaped_checkpoint().items() if k in ("meta", "optimizer")},
        "state_dict": {},
        "a": shared,
        "b": [shared, (base[1], base.t())],  # views of one storage: each is stored alone
        "c": torch.tensor([1 + 2j]),  # a dtype safetensors lacks: stays in the pickled rest
        "d": torch.zeros(0, 3, dtype=torch.bfloat16),
    }

    loaded = safeload.resume_from_buffer(written(state, tmp_path), "r")

    assert loaded["a"] is loaded["b"][0] and torch.equal(loaded["a"], shared)
    assert torch.equal(loaded["b"][1][0], base[1]) and torch.equal(loaded["b"][1][1], base.t())
    assert torch.equal(loaded["c"], state["c"])
    assert loaded["d"].shape == (0, 3) and loaded["d"].dtype == torch.bfloat16


def planted_resume_file(rest: bytes, tensors: dict[str, Any] | None = None) -> bytes:
    blob = torch.frombuffer(bytearray(rest), dtype=torch.uint8)
    metadata = {"format": safeload.RESUME_FORMAT}
    return safetensors.torch.save({**(tensors or {}), safeload.SKELETON: blob}, metadata=metadata)


def test_a_planted_pickle_as_the_rest_of_a_published_resume_file_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickled = io.BytesIO()
    torch.save({"state_dict": {}, "payload": Payload(marker)}, pickled)
    weights = safeload.serialize_weights({"w": torch.ones(2)}, {})
    ckpt_dir = tmp_path / "checkpoints"
    manifest = checkpoint.publish(
        str(ckpt_dir),
        epoch=1,
        weights=weights,
        resume=lambda f: f.write(planted_resume_file(pickled.getvalue())),
        loss_per_epoch=[1.0],
        keep=1,
        settings=SETTINGS,
    )
    buf = checkpoint.read_verified(manifest, manifest.resume)  # the digest matches

    with pytest.raises(errors.IntegrityError, match="refused unread") as caught:
        safeload.resume_from_buffer(buf, manifest.resume.name)
    assert "system" in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()


def test_a_resume_file_naming_a_tensor_it_does_not_hold_is_refused(tmp_path: Path) -> None:
    pickled = io.BytesIO()
    torch.save({"state_dict": {}, "m": {"__sharedvol_tensor__": "7"}}, pickled)
    (tmp_path / "r").write_bytes(planted_resume_file(pickled.getvalue(), {"0": torch.ones(2)}))

    with pytest.raises(errors.IntegrityError, match="names a tensor it does not hold"):
        safeload.resume_from_buffer(bytearray((tmp_path / "r").read_bytes()), "r")


def test_a_weights_file_given_as_the_resume_file_is_refused(tmp_path: Path) -> None:
    weights = safeload.serialize_weights({"w": torch.ones(2)}, {"epoch": "1"})

    with pytest.raises(errors.IntegrityError, match="is not a sharedvol resume file"):
        safeload.resume_from_buffer(bytearray(weights), "w.safetensors")
