"""Loading published files runs no code: safetensors weights, allow-listed resume state, planted pickles refused."""

from __future__ import annotations

import ctypes
import io
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import torch

from steps import checkpoint, errors, safeload
from tests.stepdocs import SETTINGS


class Payload:
    """Unpickling this runs ``touch <marker>``: what a planted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def planted_pickle(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"epoch": 1}, "payload": Payload(marker)}, buf)
    return buf.getvalue()


def publish_planted(ckpt_dir: Path, marker: Path) -> checkpoint.Manifest:
    """A planted pickle as both files, published properly: its digests match."""
    data = planted_pickle(marker)
    return checkpoint.publish(
        str(ckpt_dir), epoch=1, weights=data, resume=data, loss_per_epoch=[1.0], keep=1, settings=SETTINGS
    )


def test_the_payload_does_run_code_when_unpickled_normally(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.load(io.BytesIO(planted_pickle(marker)), weights_only=False)
    assert marker.exists()


def test_a_planted_pickle_with_a_matching_digest_is_refused_as_weights_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    manifest = publish_planted(tmp_path / "checkpoints", marker)
    buf = checkpoint.read_verified(manifest, manifest.weights)  # the digest matches

    with pytest.raises(errors.IntegrityError, match="is not a safetensors weights file"):
        safeload.weights_from_buffer(buf, manifest.weights.name)
    assert not marker.exists()


def test_a_planted_pickle_with_a_matching_digest_is_refused_for_resume_and_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # the switch the old code set: it must not matter
    marker = tmp_path / "ran"
    manifest = publish_planted(tmp_path / "checkpoints", marker)
    buf = checkpoint.read_verified(manifest, manifest.resume)

    with pytest.raises(errors.IntegrityError) as caught:
        safeload.resume_from_buffer(buf, manifest.resume.name)
    message = str(caught.value)
    assert "\n" not in message
    assert "holds more than mmengine's training state and was refused unread" in message
    assert "system" in message  # names what it refused
    assert not marker.exists()


def mmengine_shaped_checkpoint() -> dict[str, Any]:
    import numpy as np
    from mmengine.logging import HistoryBuffer

    history = HistoryBuffer([0.5, 0.25], [1, 1])
    return {
        "meta": {"epoch": 1, "iter": 4, "seed": 0, "dataset_meta": {"classes": ("a", "b")}},
        "state_dict": {"w": torch.ones(3)},
        "message_hub": {
            "log_scalars": {"train/loss": history},
            "runtime_info": {"epoch": 1, "scale": np.float64(1.5), "arr": np.arange(3)},
            "resumed_keys": {"train/loss": True, "epoch": True},
        },
        "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
        "param_schedulers": [{"milestones": {1: 1}, "last_step": 1}],
    }


def test_mmengines_training_state_round_trips_with_only_the_allow_list() -> None:
    ckpt = mmengine_shaped_checkpoint()
    safeload.encode_message_hub(ckpt)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(buf.getvalue()))

    loaded = safeload.resume_from_buffer(bytearray(buf.getvalue()), "resume.pth")

    assert set(unsafe) <= set(safeload.RESUME_ALLOWED)
    history = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert list(history.data[0]) == [0.5, 0.25] and history.mean() == pytest.approx(0.375)
    assert loaded["message_hub"]["runtime_info"]["scale"] == 1.5
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(3))


def test_a_training_state_claiming_more_iterations_than_mmengine_can_count_is_one_line() -> None:
    ckpt = mmengine_shaped_checkpoint()
    ckpt["meta"]["iter"] = 2**60  # mmengine's ETA raised OverflowError on it, half-way through the first epoch
    safeload.encode_message_hub(ckpt)
    buf = io.BytesIO()
    torch.save(ckpt, buf)

    with pytest.raises(errors.SchemaError, match=r"field meta\.iter: Input should be less than or equal to 2147483647"):
        safeload.resume_from_buffer(bytearray(buf.getvalue()), "resume.pth")


def test_mmengines_own_pickling_of_history_buffers_is_refused_because_it_needs_getattr() -> None:
    ckpt = mmengine_shaped_checkpoint()  # not encoded: HistoryBuffer pickles its statistics functions
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    with pytest.raises(errors.IntegrityError, match="refused unread"):
        safeload.resume_from_buffer(bytearray(buf.getvalue()), "resume.pth")
    assert "getattr" not in " ".join(safeload.RESUME_ALLOWED)


def test_weights_read_as_views_equal_what_the_safetensors_library_reads() -> None:
    import safetensors.torch

    state = {
        "conv.weight": torch.randn(4, 3, 3, 3),
        "bn.num_batches_tracked": torch.tensor(7),
        "fc.bias": torch.randn(10).half(),
        "empty": torch.zeros(0, 5),
    }
    data = safeload.serialize_weights(state, {"epoch": "3"})
    buf = bytearray(data)

    tensors, metadata = safeload.weights_from_buffer(buf, "w.safetensors")
    reference = safetensors.torch.load(data)

    assert metadata == {"epoch": "3"}
    assert tensors.keys() == reference.keys() == state.keys()
    for name, tensor in tensors.items():
        assert tensor.dtype == reference[name].dtype and torch.equal(tensor, reference[name])
    start = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    assert all(start <= t.data_ptr() < start + len(buf) for t in tensors.values() if t.numel())  # views: no copy


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: d[:5], "too short"),
        (lambda d: struct.pack("<Q", 10**9) + d[8:], "header length out of range"),
        (lambda d: d[:8] + b"!" + d[9:], "header is not JSON"),
        (lambda d: d[: len(d) - 4], "does not fit its data"),
    ],
    ids=["short", "header length", "header json", "data"],
)
def test_a_malformed_weights_file_is_refused_naming_why(damage: Any, why: str) -> None:
    data = safeload.serialize_weights({"w": torch.ones(4)}, {})
    with pytest.raises(errors.IntegrityError, match=why):
        safeload.weights_from_buffer(bytearray(damage(data)), "w.safetensors")
