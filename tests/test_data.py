"""Splits, scaling, augmentation and the data module's batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kmnist.data.augment import BatchAugment
from kmnist.data.batches import TensorBatches
from kmnist.data.datamodule import KannadaMNISTDataModule
from kmnist.data.preprocess import Preprocess
from kmnist.data.splits import (
    ROWS_PER_WRITER,
    first_n_split,
    make_split,
    stratified_split,
    writer_of_row,
    writer_order_share,
    writer_split,
)

N = 47 * ROWS_PER_WRITER - 160  # the official file: 47 writers, the last with 1,120 rows


def test_writer_split_never_shares_a_writer_and_is_deterministic():
    train, val = writer_split(N, val_writers=6, seed=3)
    writers = writer_of_row(N)
    assert set(writers[train]).isdisjoint(writers[val])
    assert len(set(writers[val])) == 6
    assert len(train) + len(val) == N and len(np.intersect1d(train, val)) == 0
    again_train, again_val = writer_split(N, val_writers=6, seed=3)
    np.testing.assert_array_equal(val, again_val)
    other = writer_split(N, val_writers=6, seed=4)[1]
    assert not np.array_equal(val, other)


def test_stratified_split_keeps_class_shares_and_is_deterministic():
    labels = np.arange(N) % 10
    train, val = stratified_split(labels, 0.2, seed=42)
    counts = np.bincount(labels[val], minlength=10)
    assert np.all(counts == np.round(0.2 * np.bincount(labels)))
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == N
    np.testing.assert_array_equal(val, stratified_split(labels, 0.2, seed=42)[1])
    assert not np.array_equal(val, stratified_split(labels, 0.2, seed=5)[1])


def test_first_n_and_no_validation():
    train, val = first_n_split(100, 10)
    np.testing.assert_array_equal(val, np.arange(10))
    labels = np.arange(N) % 10
    for split, kw in [
        ("writer", dict(val_writers=0)),
        ("stratified", dict(val_fraction=0.0)),
        ("first_n", dict(val_rows=0)),
    ]:
        args = dict(val_writers=6, val_fraction=0.1, val_rows=10, seed=0) | kw
        train, val = make_split(split, labels, **args)
        assert len(val) == 0 and len(train) == N


def test_split_option_errors_name_the_option():
    with pytest.raises(ValueError, match="data.val_writers=99"):
        writer_split(N, 99, 0)
    with pytest.raises(ValueError, match="data.split='random'"):
        make_split("random", np.zeros(10), val_writers=1, val_fraction=0.1, val_rows=1, seed=0)


def test_a_stratified_share_that_rounds_to_no_row_is_refused(data_dir):
    """val_fraction=0.1 of 4 rows a class holds out round(0.4) = 0 of each: the run trained with an
    empty validation set (no val/acc, no best checkpoint) without a word."""
    from kmnist.errors import ConfigError

    labels = np.arange(40) % 10
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.1: .*40 rows.* no row"):
        stratified_split(labels, 0.1, seed=0)
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.6: .*10 rows.* nothing to train on"):
        stratified_split(np.arange(10), 0.6, seed=0)  # one row a class: every one validates
    dm = KannadaMNISTDataModule(dir=str(data_dir), split="stratified", val_fraction=0.1, limit_rows=40)
    with pytest.raises(ConfigError, match=r"data\.val_fraction=0\.1"):
        dm.setup("fit")
    train, val = stratified_split(labels, 0.2, seed=0)  # round(0.8) = 1 of each class
    assert len(val) == 10 and len(train) == 30


def test_scaling_modes():
    x = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8).expand(1, 1, 3, 3).contiguous()
    scale = Preprocess("scale", input_size=3)(x)
    assert torch.allclose(scale[0, 0, 0], torch.tensor([0.0, 0.2, 1.0]))
    center = Preprocess("center", input_size=3, mean=0.2)(x)
    assert torch.allclose(center[0, 0, 0], torch.tensor([-0.2, 0.0, 0.8]))
    std = Preprocess("standardize", input_size=3, mean=0.2, std=0.5)(x)
    assert torch.allclose(std[0, 0, 0], torch.tensor([-0.4, 0.0, 1.6]))
    rgb = Preprocess("scale", input_size=6, in_chans=3, imagenet_norm=True)(x)
    assert rgb.shape == (1, 3, 6, 6)
    with pytest.raises(ValueError, match="data.scaling='minmax'"):
        Preprocess("minmax")


def digits(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 10:18] = torch.rand(n, 1, 12, 8, generator=g)
    return x


def test_augment_keeps_shape_and_range_and_differs_per_image():
    torch.manual_seed(0)
    aug = BatchAugment(rotation=10, translate=0.25, shear=0.1, zoom=0.4, warp=0.05, lighting=0.1, erase_p=0.5)
    one = digits(1).expand(32, 1, 28, 28).contiguous()  # 32 copies of the same image
    out = aug(one)
    assert out.shape == one.shape and out.dtype == one.dtype
    assert out.min() >= 0 and out.max() <= 1
    flat = out.flatten(1)
    distinct = {tuple(row.round(decimals=4).tolist()) for row in flat}
    assert len(distinct) == 32, "each image must get its own random parameters"


def test_identity_augment_and_zero_params_change_nothing():
    x = digits(8)
    assert torch.equal(BatchAugment()(x), x)
    # A zero-strength warp is the identity up to interpolation error.
    warped = BatchAugment(rotation=1e-9)(x)
    assert torch.allclose(warped, x, atol=1e-5)


def test_augment_rotation_moves_pixels_but_keeps_mass():
    torch.manual_seed(1)
    x = digits(16)
    out = BatchAugment(rotation=30)(x)
    assert not torch.allclose(out, x)
    # A centred digit rotated about the centre keeps most of its ink.
    ratio = out.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert torch.all((ratio > 0.8) & (ratio < 1.2))


def test_tensor_batches_cover_every_row_once_and_reshuffle():
    data = (torch.arange(103), torch.arange(103) * 2)
    batches = TensorBatches(data, batch_size=10, shuffle=True, seed=1)
    first = torch.cat([b[0] for b in batches])
    second = torch.cat([b[0] for b in batches])
    assert len(batches) == 11 and sorted(first.tolist()) == list(range(103))
    assert not torch.equal(first, second)
    assert all(torch.equal(b[1], b[0] * 2) for b in batches)
    assert len(TensorBatches(data, 10, drop_last=True)) == 10
    shards = [
        torch.cat([b[0] for b in TensorBatches(data, 10, shuffle=True, seed=1, rank=r, world_size=2)])
        for r in (0, 1)
    ]
    assert len(np.intersect1d(shards[0], shards[1])) == 0


class _Trainer:  # the two attributes the data module reads; a full Trainer is exercised in test_train
    def __init__(self, training):
        self.training, self.global_rank, self.world_size = training, 0, 1


@pytest.mark.parametrize("on_device", [False, True])
def test_datamodule_batches_augment_only_in_training(data_dir, on_device):
    dm = KannadaMNISTDataModule(
        dir=str(data_dir),
        val_writers=1,
        batch_size=32,
        on_device=on_device,
        scaling="standardize",
        augment=BatchAugment(rotation=10, translate=0.1),
    )
    dm.setup("fit")
    assert len(dm.train_set[0]) == 2 * ROWS_PER_WRITER and len(dm.val_set[0]) == ROWS_PER_WRITER
    assert dm.train_set[0].dtype == torch.uint8 and dm.train_set[0].shape[1:] == (1, 28, 28)
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and len(y) == 32

    dm.trainer = _Trainer(training=False)
    plain_a, _ = dm.on_after_batch_transfer((x, y), 0)
    plain_b, _ = dm.on_after_batch_transfer((x, y), 0)
    assert torch.equal(plain_a, plain_b), "no augmentation outside training"
    # standardize: statistics from the training split only
    assert abs(float(plain_a.mean())) < 0.5
    dm.trainer = _Trainer(training=True)
    augmented, _ = dm.on_after_batch_transfer((x, y), 0)
    assert augmented.shape == plain_a.shape and not torch.equal(augmented, plain_a)


def test_a_writer_split_of_a_file_out_of_the_official_order_is_refused(data_dir, tmp_path):
    from kmnist.data.io import read_digits, table_to_frame
    from kmnist.data.table import DigitTable
    from kmnist.errors import DataError
    from kmnist.utils.atomic import atomic_write_csv

    table = read_digits(data_dir / "train.csv.gz")
    order = np.random.default_rng(0).permutation(len(table))
    atomic_write_csv(
        table_to_frame(DigitTable(images=table.images[order], labels=table.labels[order])),
        tmp_path / "train.csv.gz",
    )
    shuffled = KannadaMNISTDataModule(dir=str(tmp_path), val_writers=1, val_file=None)
    with pytest.raises(
        DataError,
        match=r"train.csv.gz: only 1\d% of its rows keep the official order "
        r".* data.split=writer would be a random split",
    ):
        shuffled.setup("fit")
    # Relabelled in place (a label fixed, or all of them permuted) it keeps its writers.
    labels = (table.labels + 1) % 10
    labels[5] = 0
    assert writer_order_share(labels) == pytest.approx(1 - 1 / len(labels))
    # Other splits, and a writer split holding out no one, do not depend on the order.
    KannadaMNISTDataModule(dir=str(tmp_path), split="stratified", val_fraction=0.1, val_file=None).setup(
        "fit"
    )
    KannadaMNISTDataModule(dir=str(tmp_path), val_writers=0, val_file=None).setup("fit")


def test_datamodule_resizes_for_three_channel_models(data_dir):
    dm = KannadaMNISTDataModule(
        dir=str(data_dir), val_writers=1, input_size=32, in_chans=3, imagenet_norm=True
    )
    dm.setup("fit")
    x, y = next(iter(dm.val_dataloader()[0]))
    out, _ = dm.on_after_batch_transfer((x, y), 0)
    assert out.shape[1:] == (3, 32, 32)


def test_datamodule_predict_keeps_ids_in_order(data_dir):
    dm = KannadaMNISTDataModule(dir=str(data_dir), predict_file="test.csv.gz", eval_batch_size=100)
    dm.setup("predict")
    rows = sum(len(b[0]) for b in dm.predict_dataloader())
    assert rows == len(dm.predict_ids) and len(np.unique(dm.predict_ids)) == rows


def test_datamodule_channels_last_batches(data_dir):
    dm = KannadaMNISTDataModule(
        dir=str(data_dir), val_writers=1, input_size=32, in_chans=3, channels_last=True
    )
    dm.setup("fit")
    x, y = next(iter(dm.val_dataloader()[0]))
    out, _ = dm.on_after_batch_transfer((x, y), 0)
    assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()


def test_inverse_3x3_matches_linalg_inv():
    from kmnist.data.augment import BatchAugment, inverse_3x3

    augment = BatchAugment(rotation=30, translate=0.2, shear=0.3, zoom=0.3, warp=0.1)
    matrices = augment.sample_matrices(512, torch.zeros(1))
    torch.testing.assert_close(inverse_3x3(matrices), torch.linalg.inv(matrices), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        inverse_3x3(matrices) @ matrices, torch.eye(3).expand(512, 3, 3), atol=1e-5, rtol=1e-5
    )


def test_one_extra_train_path_is_a_list_of_one(data_dir):
    dm = KannadaMNISTDataModule(
        dir=str(data_dir), val_writers=1, extra_train=str(data_dir / "test_labelled.csv.gz")
    )
    dm.setup("fit")
    assert dm.extra_train == [str(data_dir / "test_labelled.csv.gz")]
    assert (
        len(dm.train_set[0]) == len(dm.train_set[1]) == 2 * 1280 + 500
    )  # two training writers + the file's 500 rows


def test_a_missing_extra_train_file_is_named_as_given(data_dir, tmp_path, monkeypatch):
    """A typo in a pseudo-label path was reported under data.dir (a path the user never wrote), without
    naming data.extra_train, and with the hint to download the dataset."""
    from kmnist.errors import DataError

    monkeypatch.chdir(tmp_path)
    dm = KannadaMNISTDataModule(
        dir=str(data_dir), val_writers=1, extra_train=["runs/pseudo1/pseudo_labels.csv.gz"]
    )
    with pytest.raises(
        DataError,
        match=r"^runs/pseudo1/pseudo_labels\.csv\.gz: data\.extra_train not found here "
        r"or in paths\.data_dir=",
    ) as err:
        dm.setup("fit")
    assert "download" not in str(err.value)
