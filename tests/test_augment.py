"""The newer augmentations: aspect stretch, elastic distortion, stroke thickness, MixUp and CutMix. Each draws
its parameters per image, keeps shape and range, and runs only in training."""

from __future__ import annotations

import re

import pytest
import torch
from omegaconf import open_dict

from kmnist.data.augment import BatchAugment
from kmnist.data.datamodule import KannadaMNISTDataModule
from kmnist.data.mixing import cutmix, mixup
from kmnist.errors import ConfigError


def digit_batch(n: int = 16) -> torch.Tensor:
    """The same centred bar (a stand-in stroke) repeated: any difference between outputs is the
    augmentation's."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    return x


def test_elastic_field_is_bounded_smooth_and_per_image():
    torch.manual_seed(0)
    augment = BatchAugment(elastic=0.05)
    field = augment.sample_displacement(8, 28, 28, torch.zeros(1))
    assert field.shape == (8, 28, 28, 2)
    assert field.abs().max() <= 0.1 + 1e-6 and field.abs().max() > 0.02  # 2 x elastic in [-1, 1] units
    # Smooth: neighbouring pixels move almost together (raw noise would jump by up to the range).
    assert (field[:, 1:] - field[:, :-1]).abs().max() < 0.3 * field.abs().max()
    assert not torch.allclose(field[0], field[1])
    out = augment(digit_batch(8))
    assert out.shape == (8, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], digit_batch(1)[0])


def test_aspect_stretches_each_image_by_its_own_ratio_and_keeps_the_area():
    augment, x = BatchAugment(aspect=0.5), digit_batch(256)
    torch.manual_seed(0)
    matrices = augment.sample_matrices(256, x)
    torch.manual_seed(0)
    out = augment(x)  # the same draw: forward samples its matrices first
    scale_x, scale_y = matrices[:, 0, 0], matrices[:, 1, 1]
    ratio = scale_x / scale_y
    assert torch.allclose(scale_x * scale_y, torch.ones(256), atol=1e-5), "area kept: zoom is a separate knob"
    assert ratio.min() >= 1 / 1.5 - 1e-5 and ratio.max() <= 1.5 + 1e-5
    assert ratio.min() < 0.75 and ratio.max() > 1.35 and len(torch.unique(ratio)) == 256, (
        "per image, both ways"
    )
    assert (
        matrices[:, 0, 1].abs().max() < 1e-6 and matrices[:, 1, 0].abs().max() < 1e-6
    )  # no rotation or shear
    # The bar (12 rows x 4 columns) comes out wider for its height exactly where the ratio says so.
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")

    def spread(img: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        mass = img.sum(dim=(-2, -1))
        mean = (img * coords).sum(dim=(-2, -1)) / mass
        return ((img * (coords - mean[..., None, None]) ** 2).sum(dim=(-2, -1)) / mass).sqrt()

    shape_change = (spread(out, xs) / spread(out, ys)) / (spread(x, xs) / spread(x, ys))
    assert torch.corrcoef(torch.stack([shape_change.flatten(), ratio]))[0, 1] > 0.95
    assert BatchAugment(aspect=0.0).is_identity and not augment.is_identity


@pytest.mark.parametrize(
    ("knob", "value", "says"),
    [
        ("aspect", -0.5, "expected >= 0"),
        ("zoom", 1.0, "expected < 1"),
        ("erase_p", 1.5, "a probability"),
        ("lighting", 1.5, "expected < 1"),
        ("erase_area", [0.1], "expected \\[min, max\\]"),
        ("erase_area", [0.3, 1.5], "0 <= min <= max <= 1"),
    ],
)
def test_a_bad_knob_is_a_one_line_error_naming_it(knob, value, says):
    with pytest.raises(ConfigError, match=rf"data\.augment\.{knob}={re.escape(str(value))}: .*{says}"):
        BatchAugment(**{knob: value})


@pytest.mark.parametrize("value", ["abc", [2, 3], 0, -4, 2.5])
def test_a_bad_elastic_grid_is_a_one_line_error_naming_it(value):
    """elastic_cells was int()-ed unchecked: text or a list was a bare ValueError/TypeError from Hydra
    naming only data.augment, and 0, -4 or 2.5 were silently drawn on another grid."""
    with pytest.raises(
        ConfigError, match=rf"data\.augment\.elastic_cells={re.escape(str(value))}: expected an integer >= 2"
    ):
        BatchAugment(elastic=0.03, elastic_cells=value)
    assert BatchAugment(elastic=0.03, elastic_cells=2).elastic_cells == 2


def test_stroke_thickens_or_thins_each_image_by_its_own_amount():
    torch.manual_seed(0)
    x = digit_batch(64)
    out = BatchAugment(stroke=1.0)(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    thicker = (out >= x - 1e-6).flatten(1).all(1)
    thinner = (out <= x + 1e-6).flatten(1).all(1)
    assert bool((thicker | thinner).all()), "each image is dilated or eroded, never both"
    ink = out.sum(dim=(1, 2, 3))
    # The 12x4 bar holds 48 of ink; a full 3x3 dilation makes it 14x6 = 84, a full erosion 10x2 = 20.
    assert ink.min() >= 20 - 1e-3 and ink.max() <= 84 + 1e-3
    assert (ink > 48.5).any() and (ink < 47.5).any() and len(torch.unique(ink.round(decimals=3))) > 10


def test_mixup_blends_images_and_labels_by_a_weight_per_image():
    torch.manual_seed(0)
    x = torch.stack([torch.full((1, 28, 28), float(v)) for v in (0.0, 1.0, 0.25, 0.75)])
    y = torch.tensor([0, 1, 2, 3])
    partner = torch.tensor([1, 0, 3, 2])
    chosen = torch.tensor([True, True, True, False])
    mixed, target = mixup(x, y, alpha=0.4, chosen=chosen, partner=partner)
    assert target.shape == (4, 10) and torch.allclose(target.sum(1), torch.ones(4))
    keep = target[torch.arange(4), y]
    expected = keep.view(-1, 1, 1, 1) * x + (1 - keep.view(-1, 1, 1, 1)) * x[partner]
    torch.testing.assert_close(mixed, expected)
    assert keep[3] == 1 and torch.equal(mixed[3], x[3]), "an image not chosen stays as it is"
    torch.testing.assert_close(target[torch.arange(4), y[partner]], 1 - keep)
    assert len(set(keep[:3].tolist())) == 3  # three chosen images, three weights


def test_cutmix_targets_follow_the_pasted_area():
    torch.manual_seed(1)
    x = torch.cat([torch.zeros(8, 1, 28, 28), torch.ones(8, 1, 28, 28)])
    y = torch.tensor([0] * 8 + [1] * 8)
    partner = torch.cat([torch.arange(8, 16), torch.arange(8)])
    mixed, target = cutmix(x, y, alpha=1.0, chosen=torch.ones(16, dtype=torch.bool), partner=partner)
    pasted = (mixed != x).flatten(1).float().mean(1)
    torch.testing.assert_close(target[torch.arange(16), y], 1 - pasted)
    assert (pasted > 0).sum() >= 12 and len(set(pasted.tolist())) > 4


def test_mix_chooses_a_share_of_images_and_is_off_by_default():
    x, y = digit_batch(256), torch.arange(256) % 10
    assert BatchAugment().mix(x, y) == (x, None) and not BatchAugment().mixes
    torch.manual_seed(0)
    _, target = BatchAugment(mixup=0.4, cutmix=1.0, mix_p=0.5).mix(x, y)
    pure = (target.max(1).values == 1).float().mean()
    assert 0.35 < pure < 0.7  # about half untouched (plus partners of the same digit)


class _Trainer:  # what the data module reads of its trainer
    def __init__(self, training):
        self.training, self.global_rank, self.world_size = training, 0, 1


def test_datamodule_mixes_only_in_training(data_dir):
    dm = KannadaMNISTDataModule(
        dir=str(data_dir),
        val_writers=1,
        batch_size=64,
        augment=BatchAugment(elastic=0.03, stroke=0.5, mixup=0.4, cutmix=1.0, mix_p=1.0),
    )
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    dm.trainer = _Trainer(training=False)
    assert len(dm.on_after_batch_transfer((x, y), 0)) == 2
    dm.trainer = _Trainer(training=True)
    images, labels, target = dm.on_after_batch_transfer((x, y), 0)
    assert images.shape == (64, 1, 28, 28) and torch.equal(labels, y)
    assert target.shape == (64, 10) and torch.allclose(target.sum(1), torch.ones(64))


@pytest.mark.parametrize("preset", ["mix", "elastic"])
def test_a_real_fit_with_the_new_augmentations(compose_train, tmp_path, preset):
    overrides = {
        "mix": ["data.augment.mixup=0.4", "data.augment.cutmix=1.0", "data.augment.mix_p=0.5"],
        "elastic": ["data.augment.elastic=0.03", "data.augment.stroke=0.5", "data.augment.aspect=0.5"],
    }[preset]
    from kmnist.tasks.train import train

    cfg = compose_train("model=cnn", *overrides)
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
        cfg.trainer.limit_train_batches = 40
    metrics, _ = train(cfg)
    # It learns (chance is 0.1 and a loss of ln 10 = 2.30): mixed images and their targets agree.
    assert metrics["val/acc"] > 0.2 and metrics["val/loss"] < 2.1, metrics
    assert (tmp_path / "batch.png").is_file()
