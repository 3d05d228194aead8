"""amp, augment and loader workers: the device decides unless a run says otherwise, from compile to component."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import dsl

from pipelines import components, options, params, pipeline
from steps import data, errors

AUTO = {"amp": "auto", "augment": "auto", "num_workers": -1}


def compiled_inputs(tmp_path: Path, defaults: params.RunParameters) -> tuple[dict[str, Any], dict[str, Any]]:
    """The root's parameter defaults and the task inputs of train-resnet and test-resnet, by task name."""
    out = pipeline.compile_to(options.CompileOptions(defaults=defaults), tmp_path / "p.yaml").path
    spec = next(yaml.safe_load_all(out.read_text()))
    roots = {n: p.get("defaultValue") for n, p in spec["root"]["inputDefinitions"]["parameters"].items()}
    tasks = {t["taskInfo"]["name"]: t["inputs"]["parameters"] for t in spec["root"]["dag"]["tasks"].values()}
    return roots, tasks


def test_a_pipeline_compiled_with_the_defaults_hands_auto_to_the_train_and_test_components(tmp_path: Path) -> None:
    roots, tasks = compiled_inputs(tmp_path, params.RunParameters())

    assert {n: roots[n] for n in AUTO} == AUTO
    for name in AUTO:
        assert tasks["train-resnet"][name] == {"componentInputParameter": name}
    assert tasks["test-resnet"]["num_workers"] == {"componentInputParameter": "num_workers"}


def test_explicit_amp_augment_and_workers_given_at_compile_time_are_the_pipelines_defaults(tmp_path: Path) -> None:
    chosen = {"amp": "off", "augment": "stock", "num_workers": 4}
    roots, _ = compiled_inputs(tmp_path, params.RunParameters(**chosen))

    assert {n: roots[n] for n in chosen} == chosen


def train(tmp_path: Path, dataset: Path, **chosen: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the train-resnet component function for real (1 epoch, CPU).

    Returns:
        The ``TrainConfig`` it built (``train/summary.json``'s config) and what mmengine ran with (the config it
        dumped): AMP on or off, stock or batched augmentation, loader workers.
    """
    from mmengine.config import Config

    run_dir = tmp_path / "run"
    components.train_resnet(
        run_dir=str(run_dir),
        data_root=str(dataset),
        epochs=1,
        batch_size=10,
        lr=0.05,
        seed=0,
        device="cpu",
        train_metrics=dsl.Metrics(name="train_metrics", uri=str(tmp_path / "metrics")),
        **chosen,
    )
    config: dict[str, Any] = json.loads((run_dir / "train" / "summary.json").read_text())["config"]
    (dumped,) = (run_dir / "train").glob("resnet18_*.py")
    c = Config.fromfile(str(dumped))
    ran = {
        "amp": c.optim_wrapper.type == "AmpOptimWrapper",
        "augment": "batched" if c.train_dataloader.dataset.type == "SharedvolCIFAR10Tensors" else "stock",
        "num_workers": c.train_dataloader.num_workers,
    }
    return config, ran


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    data.synthesize(str(root), train=20, test=10)
    return root


@pytest.fixture(autouse=True)
def _restore_cuda_visibility(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the component hides GPUs for device cpu; undone after the test


def test_the_train_component_leaves_auto_to_the_device_and_the_cpu_chooses_no_amp_stock_and_no_workers(
    tmp_path: Path, dataset: Path
) -> None:
    config, ran = train(tmp_path, dataset, **AUTO)

    assert (config["amp"], config["augment"], config["num_workers"]) == (None, "auto", None)
    assert ran == {"amp": False, "augment": "stock", "num_workers": 0}


def test_the_train_component_passes_explicit_amp_augment_and_workers_through(tmp_path: Path, dataset: Path) -> None:
    config, ran = train(tmp_path, dataset, amp="off", augment="batched", num_workers=1)

    assert (config["amp"], config["augment"], config["num_workers"]) == (False, "batched", 1)
    assert ran == {"amp": False, "augment": "batched", "num_workers": 1}
    with pytest.raises(errors.ConfigError, match="--amp needs a CUDA device"):
        train(tmp_path / "on", dataset, amp="on", augment="auto", num_workers=-1)
