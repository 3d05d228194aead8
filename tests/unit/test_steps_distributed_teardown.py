"""train-resnet leaves the other ranks (destroys its process group) however training ends: a gloo group left to the
interpreter's exit aborted a rank after its work was done (exit -6), which torchrun reports as a failed rank."""

from __future__ import annotations

import pytest

from steps import config, distributed, errors, train_resnet


@pytest.mark.parametrize("ending", ["returns", "raises"])
def test_train_resnet_destroys_the_process_group_whether_training_returns_or_raises(
    ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(config.TrainConfig, "validate", lambda self: None)
    monkeypatch.setattr(distributed, "init", lambda device: calls.append("init"))
    monkeypatch.setattr(distributed, "finish", lambda: calls.append("finish"))

    def body(cfg: config.TrainConfig, device: str) -> str:
        calls.append("train")
        if ending == "raises":
            raise errors.DatasetError("no data", hint="make some")
        return "summary"

    monkeypatch.setattr(train_resnet, "_train", body)
    cfg = config.TrainConfig(run_dir="/nowhere/run", data_root="/nowhere/data", device="cpu")
    if ending == "raises":
        with pytest.raises(errors.DatasetError):
            train_resnet.train(cfg)
    else:
        assert train_resnet.train(cfg) == "summary"
    assert calls == ["init", "train", "finish"]


def test_finish_does_nothing_in_a_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    import torch.distributed as dist

    assert not distributed.launched()
    distributed.finish()  # no group was made: nothing to destroy, nothing raised
    assert not dist.is_initialized()
