"""Hostile documents and weights on the shared volume: kernel files, overflowing numbers, impossible shapes, NaN.

Each case is a real file read by the step command a user runs: one line naming the file, exit 2, no traceback.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines import cli
from steps import checkpoint, data, errors, safeload
from tests import stepdocs
from tests.unit.test_steps_hostile_volume import write_eval

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=20, test=10)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """Exit code and the error lines (INFO and WARNING log lines left out) of the step command ``argv``."""
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [ln for ln in err.splitlines() if ln.strip() and " INFO " not in ln and " WARNING " not in ln]


# ---------------------------------------------------------------- kernel files behind a symbolic link


def kernel_file(*candidates: str) -> str:
    found = next((c for c in candidates if os.path.isfile(c)), None)
    assert found is not None, f"none of {candidates} exists here: the real node's kubelet needs cgroups mounted too"
    return found


def metrics_in_a_child(run_dir: Path) -> subprocess.CompletedProcess[str]:
    """``sharedvol metrics`` in a child process: a read that blocks fails the test at the timeout, never hangs it."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "metrics", "--run-dir", str(run_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


@pytest.mark.parametrize(
    "target",
    ["/proc/self/environ", "/proc/self/status", "/sys/devices/system/cpu/online"],
    ids=["proc-environ", "proc-status", "sys"],
)
def test_an_eval_result_linked_to_a_proc_or_sys_file_is_refused_unread_in_one_line(tmp_path: Path, target: str) -> None:
    url = write_eval(tmp_path)
    url.unlink()
    url.symlink_to(target)  # like /proc/kmsg, whose read blocks (not used here: reading it drains the kernel's log)

    p = metrics_in_a_child(tmp_path)

    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and " INFO " not in ln and " WARNING " not in ln]
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"sharedvol metrics: error: {url} is a file of the kernel (/proc or /sys)"), lines[0]
    assert "not a regular file; refused unread" in lines[0]


def test_an_eval_result_linked_to_a_zero_size_cgroup_file_that_yields_bytes_is_refused(tmp_path: Path) -> None:
    target = kernel_file(
        "/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/pids/tasks"
    )
    kernel = (os.stat("/proc").st_dev, os.stat("/sys").st_dev)
    assert not os.stat(target).st_size and os.stat(target).st_dev not in kernel, (
        f"{target} is not a zero-size file on a filesystem of its own (cgroupfs)"
    )
    url = write_eval(tmp_path)
    url.unlink()
    url.symlink_to(target)

    p = metrics_in_a_child(tmp_path)

    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and " INFO " not in ln and " WARNING " not in ln]
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(lines) == 1, p.stderr
    assert lines[0].startswith(f"sharedvol metrics: error: {url} yields more bytes than its size (0)"), lines[0]


# ---------------------------------------------------------------- numbers that overflow to infinity


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('"wall_time_s": 1.0', '"wall_time_s": 1e400', "wall_time_s"),
        ('"loss": 0.7', '"loss": -1e400', "loss"),
        ('"dataset_root": "d"', '"dataset_root": "d", "x": [1, {"y": 1e999}]', "x.1.y"),
    ],
    ids=["1e400", "-1e400", "nested"],
)
def test_a_number_that_overflows_to_infinity_in_an_eval_result_is_one_line_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, old: str, new: str, field: str
) -> None:
    url = write_eval(tmp_path)
    url.write_text(url.read_text().replace(old, new, 1))

    code, lines = run(capsys, "metrics", "--run-dir", str(tmp_path))

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"sharedvol metrics: error: {url}: field {field}: a number too large to be finite")


def test_an_epoch_of_1e400_in_the_checkpoint_manifest_is_one_line(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path
) -> None:
    manifest = stepdocs.publish_stand_ins(str(tmp_path / "checkpoints"))
    url = Path(manifest.url)
    url.write_text(url.read_text().replace('"epoch": 1', '"epoch": 1e400', 1))

    code, lines = run(capsys, "test", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--device", "cpu")

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"sharedvol test: error: {url}: field epoch: a number too large to be finite")


# ---------------------------------------------------------------- impossible safetensors shapes


def safetensors_header(tensors: dict[str, Any]) -> bytes:
    encoded = json.dumps({"__metadata__": {"format": "sharedvol.weights"}, **tensors}).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded


@pytest.mark.parametrize(
    ("shape", "rule"),
    [
        ([0, 2**64], "field tensors.x.shape.1: Input should be less than or equal to 4294967296"),
        ([0, 2**32, 2**32, 2**32], "shape [0, 4294967296, 4294967296, 4294967296] spans more than 4294967296 elements"),
        ([2**33], "field tensors.x.shape.0: Input should be less than or equal to 4294967296"),
    ],
    ids=["2^64", "product-overflows-int64", "2^33"],
)
def test_test_resnet_refuses_weights_of_an_impossible_shape_in_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, shape: list[int], rule: str
) -> None:
    raw = safetensors_header({"x": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}})
    manifest = stepdocs.publish_stand_ins(str(tmp_path / "checkpoints"), weights=raw)

    code, lines = run(capsys, "test", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--device", "cpu")

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"sharedvol test: error: {manifest.file_url(manifest.weights)}: "), lines[0]
    assert rule in lines[0], lines[0]


def test_a_tensor_torch_cannot_make_is_the_modules_own_error_naming_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    empty = torch.empty

    def refuse(size: object, **kwargs: Any) -> Any:
        if size == ():  # the reader's probe of the dtype's size
            return empty(size, **kwargs)
        raise RuntimeError("Trying to create tensor with negative dimension")

    monkeypatch.setattr(torch, "empty", refuse)
    raw = safetensors_header({"x": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}})

    with pytest.raises(errors.IntegrityError) as caught:
        safeload.weights_from_buffer(bytearray(raw), "w.safetensors")
    assert caught.value.message == (
        "w.safetensors is not a safetensors weights file (tensor 'x' of shape [0, 3] cannot be made: "
        "Trying to create tensor with negative dimension)"
    )


# ---------------------------------------------------------------- weights that are not numbers


@pytest.fixture(scope="module")
def resnet_weights() -> dict[str, Any]:
    from mmcls.registry import MODELS
    from mmcls.utils import register_all_modules
    from mmengine.config import Config

    from steps import config

    register_all_modules()
    model = MODELS.build(Config.fromfile(str(config.stock_config_path())).model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def publish_weights(run_dir: Path, weights: dict[str, Any]) -> checkpoint.Manifest:
    raw = safeload.serialize_weights(weights, {"format": "sharedvol.weights"})
    return stepdocs.publish_stand_ins(str(run_dir / "checkpoints"), weights=raw)


def test_test_resnet_refuses_nan_weights_naming_the_tensor_and_the_file_and_evaluates_nothing(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, resnet_weights: dict[str, Any]
) -> None:
    weights = {k: v.clone() for k, v in resnet_weights.items()}
    weights["head.fc.weight"][:] = float("nan")
    manifest = publish_weights(tmp_path, weights)

    code, lines = run(capsys, "test", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--device", "cpu")

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(
        f"sharedvol test: error: {manifest.file_url(manifest.weights)} holds a tensor that is not finite "
        "('head.fc.weight' has NaN or an infinity)"
    ), lines[0]
    assert not (tmp_path / "eval").exists()


def test_finite_weights_whose_loss_overflows_are_one_line_and_nothing_is_published(
    capsys: pytest.CaptureFixture[str], dataset: Path, tmp_path: Path, resnet_weights: dict[str, Any]
) -> None:
    weights = {k: v.clone() for k, v in resnet_weights.items()}
    weights["head.fc.weight"][:] = 3e38  # each finite; the logits overflow, so the loss is not a number
    manifest = publish_weights(tmp_path, weights)

    code, lines = run(capsys, "test", "--run-dir", str(tmp_path), "--data-root", str(dataset), "--device", "cpu")

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(
        f"sharedvol test: error: evaluating {manifest.url} gave a result that is not one: field loss: "
    ), lines[0]
    assert not (tmp_path / "eval").exists()


# ---------------------------------------------------------------- control characters in paths


def test_a_newline_in_the_run_directory_is_escaped_and_the_error_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "new\nline"
    run_dir.mkdir()

    code, lines = run(capsys, "metrics", "--run-dir", str(run_dir))

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"sharedvol metrics: error: {tmp_path}/new\\nline/eval/eval_result.json does not exist")


def test_a_newline_in_a_symlinked_proc_files_name_is_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "a\rb"
    url = write_eval(run_dir)
    url.unlink()
    url.symlink_to("/proc/self/status")

    code, lines = run(capsys, "metrics", "--run-dir", str(run_dir))

    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"sharedvol metrics: error: {tmp_path}/a\\rb/eval/eval_result.json is a file of the")


def test_a_newline_in_a_data_source_directory_is_escaped_wherever_the_message_is_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "new\nline"  # the message is made in steps/data.py; sharedvol's errors escape it
    source.mkdir()

    code, lines = run(capsys, "data", "prepare", str(tmp_path / "out"), "--source", str(source))

    assert code == 2 and len(lines) == 1
    assert f"{tmp_path}/new\\nline" in lines[0], lines[0]
