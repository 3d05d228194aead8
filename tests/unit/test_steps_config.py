"""The training config: stock mmcls config plus overrides; LR milestones; --cfg-options checked against the config."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from steps import config, errors


@pytest.mark.parametrize(("epochs", "expected"), [(1, []), (2, [1]), (3, [1, 2]), (4, [2, 3]), (200, [100, 150])])
def test_lr_milestones_are_distinct_in_range_and_the_stock_ones_at_200_epochs(epochs: int, expected: list[int]) -> None:
    milestones = config.milestones(epochs)
    assert milestones == expected
    assert len(set(milestones)) == len(milestones) and all(1 <= m < epochs for m in milestones)


@pytest.mark.parametrize("epochs", [1, 2, 3, 4, 200])
def test_mmengines_scheduler_decays_at_most_tenfold_per_milestone(epochs: int) -> None:
    import torch
    from mmengine.optim.scheduler import MultiStepLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = MultiStepLR(optimizer, milestones=config.milestones(epochs), gamma=0.1, by_epoch=True)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1)
    assert min(lrs) >= 0.1 * 0.1 ** len(config.milestones(epochs)) - 1e-12
    assert all(b == pytest.approx(a) or b == pytest.approx(a / 10) for a, b in itertools.pairwise(lrs))
    if epochs == 2:
        assert lrs == pytest.approx([0.1, 0.01])  # not lr/100 as with milestones [1, 1]


def cfg(tmp_path: Path, **kw: object) -> config.TrainConfig:
    return config.TrainConfig(run_dir=str(tmp_path), data_root=str(tmp_path / "data"), **kw)  # type: ignore[arg-type]


def test_the_config_is_the_stock_resnet18_cifar_config_with_our_overrides(tmp_path: Path) -> None:
    c = config.build_config(
        cfg(tmp_path, epochs=8, batch_size=64, lr=0.1, cfg_options={"model.head.topk": (1,)}),
        device="cpu",
        work_dir=str(tmp_path / "train"),
    )
    assert c.model.backbone.type == "ResNet_CIFAR" and c.model.backbone.depth == 18
    assert c.train_dataloader.dataset.type == "SharedvolCIFAR10"
    assert c.train_dataloader.batch_size == 64
    assert c.train_cfg == {"by_epoch": True, "max_epochs": 8}
    assert c.param_scheduler.milestones == [4, 6]
    assert c.optim_wrapper.optimizer.lr == 0.1 and c.optim_wrapper.optimizer.momentum == 0.9
    assert c.model.head.topk == (1,)  # not in the stock config, but LinearClsHead takes it
    assert c.default_hooks.checkpoint is None  # sharedvol's hook publishes; mmengine saves nothing itself


def test_amp_on_cuda_configures_mmengines_amp_optimizer_wrapper(tmp_path: Path) -> None:
    c = config.build_config(cfg(tmp_path, amp=True), device="cuda", work_dir=str(tmp_path))
    assert c.optim_wrapper.type == "AmpOptimWrapper"
    assert c.optim_wrapper.dtype == "float16" and c.optim_wrapper.loss_scale == "dynamic"
    assert c.device == "cuda" and c.env_cfg.cudnn_benchmark is True and c.env_cfg.dist_cfg.backend == "nccl"


def test_amp_on_the_cpu_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError, match="--amp needs a CUDA device"):
        config.build_config(cfg(tmp_path, amp=True), device="cpu", work_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"optim_wrapper.optimizer.lrr": 0.1}, "the config has no optim_wrapper.optimizer.lrr"),
        ({"nonsense": 1}, "the config has no nonsense"),
        ({"train_cfg.max_epochs": "many"}, "expected a int like 2"),
        ({"model.backbone.depth": True}, "expected a int like 18"),
        ({"model.head.bogus": 1}, "the config has no model.head.bogus"),
    ],
)
def test_an_unknown_key_or_a_value_of_another_type_is_refused(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        config.build_config(cfg(tmp_path, cfg_options=options), device="cpu", work_dir=str(tmp_path))


@pytest.mark.parametrize(
    "key",
    [
        "resume",
        "load_from",
        "work_dir",
        "custom_hooks",
        "default_hooks.checkpoint.interval",
        "model.backbone.init_cfg",
        "model.init_cfg.checkpoint",
    ],
)
def test_keys_that_read_or_write_files_on_the_volume_are_sharedvols_and_refused(tmp_path: Path, key: str) -> None:
    # mmengine reads train/last_checkpoint itself with resume=True: a FIFO there hung training (held-out test)
    with pytest.raises(errors.ConfigError, match=rf"--cfg-options {key}: \S+ is sharedvol's to set"):
        config.build_config(cfg(tmp_path, cfg_options={key: True}), device="cpu", work_dir=str(tmp_path))


def test_known_keys_with_values_of_their_type_are_merged(tmp_path: Path) -> None:
    c = config.build_config(
        cfg(tmp_path, cfg_options={"optim_wrapper.optimizer.weight_decay": 5e-4, "train_cfg.max_epochs": 3}),
        device="cpu",
        work_dir=str(tmp_path),
    )
    assert c.optim_wrapper.optimizer.weight_decay == 5e-4 and c.train_cfg.max_epochs == 3


def test_two_runners_started_in_the_same_second_write_their_logs_into_their_own_work_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mmengine hands an existing visualizer of the same experiment name to a later runner; by default the name is
    # the config file and the second: a train then a test in one second shared a deleted save_dir (seen in CI).
    import time

    from mmcls.utils import register_all_modules
    from mmengine.runner import Runner

    from steps import hooks, mmcls_ext  # noqa: F401  (they register sharedvol's modules)

    register_all_modules(init_default_scope=True)
    second = time.strftime("%Y%m%d_%H%M%S")
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: second)  # both runners start "in the same second"
    save_dirs = []
    for name in ("first", "second"):
        work_dir = tmp_path / name
        c = config.build_config(cfg(tmp_path), device="cpu", work_dir=str(work_dir))
        runner = Runner.from_cfg(c)
        save_dirs.append(Path(runner.visualizer._vis_backends["LocalVisBackend"]._save_dir))
    assert [d.is_relative_to(tmp_path / n) for d, n in zip(save_dirs, ("first", "second"), strict=True)] == [True, True]
