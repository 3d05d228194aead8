"""Batched on-device augmentation draws from the stock pipeline's distribution and matches it bit for bit."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmcls.datasets.transforms import PackClsInputs, RandomCrop
from mmcls.models.utils.data_preprocessor import ClsDataPreprocessor
from mmcls.structures import ClsDataSample
from mmcv.transforms import RandomFlip

from steps import augment, config

MEAN, STD = [125.307, 122.961, 113.8575], [51.5865, 50.847, 51.255]
N = 4000
# chi-square critical values at p = 0.001: a fair comparison fails by chance once in a thousand runs
CHI2_0001 = {1: 10.83, 8: 26.12}


def coordinate_image() -> np.ndarray:
    """HWC uint8: channel 0 holds row + 1, channel 1 column + 1, so a crop's output says where it came from."""
    rows, cols = np.mgrid[0:32, 0:32]
    return np.stack([rows + 1, cols + 1, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


def where_from(chw: torch.Tensor | np.ndarray) -> tuple[int, int, bool]:
    """(top, left, flipped) of a 32x32 crop of the zero-padded coordinate image."""
    rows, cols = np.asarray(chw[0], dtype=np.int64), np.asarray(chw[1], dtype=np.int64)
    r = next(i for i in range(32) if rows[i].max() > 0)
    top = 4 + rows[r].max() - 1 - r
    filled = [j for j in range(32) if cols[:, j].max() > 0]
    values = [int(cols[:, j].max()) for j in filled]
    flipped = len(values) > 1 and values[0] > values[-1]
    # unmirrored, output column j shows padded column left + j; mirrored, left + 31 - j
    left = values[0] - 1 + 4 - (31 - filled[0]) if flipped else 4 + values[0] - 1 - filled[0]
    return int(top), int(left), bool(flipped)


def stock_samples(n: int) -> list[tuple[int, int, bool]]:
    np.random.seed(1)
    crop, flip = RandomCrop(crop_size=32, padding=4), RandomFlip(prob=0.5, direction="horizontal")
    img = coordinate_image()
    return [where_from(flip.transform(crop.transform({"img": img.copy()}))["img"].transpose(2, 0, 1)) for _ in range(n)]


def ours_samples(n: int) -> list[tuple[int, int, bool]]:
    torch.manual_seed(1)
    pre = augment.SharedvolCifarPreprocessor(num_classes=10)  # no mean/std: the output is the augmented pixels
    batch = torch.from_numpy(coordinate_image().transpose(2, 0, 1).copy())[None].repeat(n, 1, 1, 1)
    out = pre({"inputs": batch, "data_samples": None}, training=True)["inputs"]
    return [where_from(img.round().to(torch.int64).numpy()) for img in out]


def chi2_homogeneity(a: Counter[Any], b: Counter[Any]) -> tuple[float, int]:
    keys = sorted(set(a) | set(b))
    na, nb = sum(a.values()), sum(b.values())
    stat = 0.0
    for k in keys:
        total = a[k] + b[k]
        for observed, n in ((a[k], na), (b[k], nb)):
            expected = total * n / (na + nb)
            stat += (observed - expected) ** 2 / expected
    return stat, len(keys) - 1


@pytest.fixture(scope="module")
def samples() -> tuple[list[tuple[int, int, bool]], list[tuple[int, int, bool]]]:
    return stock_samples(N), ours_samples(N)


def test_the_coordinate_decoder_reads_back_known_crops() -> None:
    img = torch.from_numpy(coordinate_image().transpose(2, 0, 1).copy())[None]
    for top, left, flip in itertools.product(range(9), range(9), (False, True)):
        out = augment.crop_flip(img, torch.tensor([top]), torch.tensor([left]), torch.tensor([flip]), pad=4)
        assert where_from(out[0]) == (top, left, flip)


@pytest.mark.parametrize(("index", "bins"), [(0, 8), (1, 8), (2, 1)], ids=["crop-rows", "crop-columns", "flip"])
def test_offsets_and_flips_follow_the_stock_pipelines_distribution(samples: Any, index: int, bins: int) -> None:
    stock, ours = samples
    a, b = Counter(s[index] for s in stock), Counter(s[index] for s in ours)
    stat, df = chi2_homogeneity(a, b)

    assert df == bins  # every offset 0..8 (or both flip outcomes) occurs on both sides
    assert stat < CHI2_0001[df], f"stock {sorted(a.items())} vs ours {sorted(b.items())}"


def test_the_flip_rate_is_one_half(samples: Any) -> None:
    _, ours = samples
    rate = sum(s[2] for s in ours) / N
    assert abs(rate - 0.5) < 4 * (0.25 / N) ** 0.5


def stock_pixels(images: np.ndarray, top: int, left: int, flip: bool) -> torch.Tensor:
    crop = RandomCrop(crop_size=32, padding=4)
    crop.rand_crop_params = lambda img: (top, left, 32, 32)  # type: ignore[method-assign]  # the fixed choice
    flipper = RandomFlip(prob=1.0 if flip else 0.0, direction="horizontal")
    pack = PackClsInputs()
    out = [
        pack.transform(flipper.transform(crop.transform({"img": img.copy(), "gt_label": 0})))["inputs"]
        for img in images
    ]
    return torch.stack(out)


def test_a_fixed_crop_and_flip_gives_the_stock_pixels_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)  # HWC, as CIFAR10 yields them
    batch = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    for top, left, flip in itertools.product(range(9), range(9), (False, True)):
        n = len(images)
        ours = augment.crop_flip(batch, torch.full((n,), top), torch.full((n,), left), torch.full((n,), flip), pad=4)
        assert torch.equal(ours, stock_pixels(images, top, left, flip)), (top, left, flip)


def test_the_preprocessor_output_equals_the_stock_path_for_a_fixed_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    top, left, flip = 3, 6, True
    expected_pixels = stock_pixels(images, top, left, flip)
    samples = [ClsDataSample().set_gt_label(i) for i in range(4)]
    stock = ClsDataPreprocessor(num_classes=10, mean=MEAN, std=STD)(
        {"inputs": list(expected_pixels), "data_samples": samples}
    )

    fixed = (torch.full((4,), top), torch.full((4,), left), torch.full((4,), flip))
    monkeypatch.setattr(augment, "sample_params", lambda *a, **k: fixed)
    pre = augment.SharedvolCifarPreprocessor(num_classes=10, mean=MEAN, std=STD)
    batch = [torch.from_numpy(img.transpose(2, 0, 1).copy()) for img in images]  # what the uint8 dataset yields
    ours = pre({"inputs": batch, "data_samples": [ClsDataSample().set_gt_label(i) for i in range(4)]}, training=True)

    assert torch.equal(ours["inputs"], stock["inputs"])
    assert [int(s.gt_label.label) for s in ours["data_samples"]] == [0, 1, 2, 3]


def test_evaluation_is_not_augmented() -> None:
    batch = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    ours = augment.SharedvolCifarPreprocessor(num_classes=10, mean=MEAN, std=STD)({"inputs": batch}, training=False)
    stock = ClsDataPreprocessor(num_classes=10, mean=MEAN, std=STD)({"inputs": batch}, training=False)
    assert torch.equal(ours["inputs"], stock["inputs"])


def cfg(tmp_path: Path, **kw: Any) -> config.TrainConfig:
    return config.TrainConfig(run_dir=str(tmp_path), data_root=str(tmp_path), **kw)


@pytest.mark.parametrize(("cores", "workers"), [(2, 2), (8, 8), (64, 8)])
@pytest.mark.parametrize(("bf16", "dtype"), [(True, "bfloat16"), (False, "float16")])
def test_on_cuda_the_defaults_feed_the_gpu(tmp_path: Path, cores: int, workers: int, bf16: bool, dtype: str) -> None:
    c = config.build_config(cfg(tmp_path), device="cuda", work_dir=str(tmp_path), bf16=bf16, cores=cores)

    for loader in (c.train_dataloader, c.test_dataloader):
        assert (loader.num_workers, loader.pin_memory, loader.persistent_workers) == (workers, True, True)
    assert c.optim_wrapper.type == "AmpOptimWrapper" and c.optim_wrapper.dtype == dtype
    assert c.optim_wrapper.loss_scale == "dynamic"
    assert c.data_preprocessor.type == "SharedvolCifarPreprocessor" and c.data_preprocessor.channels_last is True
    assert (c.data_preprocessor.mean, c.data_preprocessor.std) == (MEAN, STD)
    assert c.train_dataloader.dataset.type == "SharedvolCIFAR10Tensors" and c.train_dataloader.dataset.pipeline == []
    assert c.train_dataloader.collate_fn == {"type": "sharedvol_cifar_collate"}
    assert c.custom_hooks[0]["channels_last"] is True


def test_on_the_cpu_the_stock_path_stays(tmp_path: Path) -> None:
    c = config.build_config(cfg(tmp_path), device="cpu", work_dir=str(tmp_path), bf16=False, cores=64)

    assert (c.train_dataloader.num_workers, c.train_dataloader.pin_memory) == (0, False)
    assert [t["type"] for t in c.train_dataloader.dataset.pipeline] == ["RandomCrop", "RandomFlip", "PackClsInputs"]
    assert c.data_preprocessor.get("type", "ClsDataPreprocessor") == "ClsDataPreprocessor"
    assert c.optim_wrapper.type == "OptimWrapper" and c.custom_hooks[0]["channels_last"] is False


def test_what_the_user_sets_wins_over_the_device_defaults(tmp_path: Path) -> None:
    c = config.build_config(
        cfg(tmp_path, num_workers=3, amp=False, augment="stock"), device="cuda", work_dir=str(tmp_path), bf16=True
    )
    assert c.train_dataloader.num_workers == 3 and c.optim_wrapper.type == "OptimWrapper"
    assert c.train_dataloader.dataset.pipeline[0]["type"] == "RandomCrop"
    cpu = config.build_config(cfg(tmp_path, augment="batched"), device="cpu", work_dir=str(tmp_path), bf16=False)
    assert cpu.data_preprocessor.type == "SharedvolCifarPreprocessor" and cpu.data_preprocessor.channels_last is False


def test_the_stock_config_stays_the_base(tmp_path: Path) -> None:
    from mmengine.config import Config

    stock = Config.fromfile(str(config.stock_config_path()))
    c = config.build_config(cfg(tmp_path), device="cuda", work_dir=str(tmp_path), bf16=True)
    assert c.model == stock.model
    assert {k: v for k, v in c.data_preprocessor.items() if k in stock.data_preprocessor} == stock.data_preprocessor


def test_the_tensor_dataset_yields_the_stock_datasets_uint8_images_and_labels(tmp_path: Path) -> None:
    from mmcls.utils import register_all_modules

    from steps import data, mmcls_ext

    register_all_modules(init_default_scope=True)
    data.synthesize(str(tmp_path), train=30, test=10)
    stock = mmcls_ext.SharedvolCIFAR10(data_prefix=str(tmp_path), test_mode=False, pipeline=[{"type": "PackClsInputs"}])
    ours = mmcls_ext.SharedvolCIFAR10Tensors(data_prefix=str(tmp_path), test_mode=False, pipeline=[])

    batch = augment.cifar_collate(ours.__getitems__([3, 0, 29]))
    assert batch["inputs"].dtype == torch.uint8 and batch["inputs"].shape == (3, 3, 32, 32)
    for row, index in enumerate([3, 0, 29]):
        expected = stock[index]
        assert torch.equal(batch["inputs"][row], expected["inputs"])
        assert int(batch["data_samples"][row]) == int(expected["data_samples"].gt_label.label)
    single = augment.cifar_collate([ours[3], ours[0]])
    assert torch.equal(single["inputs"], batch["inputs"][:2])


def test_label_tensors_become_the_samples_the_models_loss_reads() -> None:
    pre = augment.SharedvolCifarPreprocessor(num_classes=10, mean=MEAN, std=STD)
    batch = {"inputs": torch.zeros((3, 3, 32, 32), dtype=torch.uint8), "data_samples": torch.tensor([4, 0, 9])}
    out = pre(batch, training=True)
    assert [s.gt_label.label.tolist() for s in out["data_samples"]] == [[4], [0], [9]]
    assert torch.cat([s.gt_label.label for s in out["data_samples"]]).tolist() == [4, 0, 9]  # what ClsHead.loss does
