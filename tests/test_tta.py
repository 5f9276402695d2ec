"""Test-time view sets (kmnist/data/tta.py): each view does what it says, a set's prediction is the
mean over its views, and a bad set name is one line naming `tta` before any checkpoint is read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli

from kmnist.data.io import read_digits
from kmnist.data.tta import IDENTITY, SHIFTS, VIEW_SETS, View, apply_view, resolve_views, tta_name
from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.errors import ConfigError
from kmnist.tasks.train import train


def dot(y: int, x: int) -> torch.Tensor:
    image = torch.zeros(1, 1, 28, 28)
    image[..., y, x] = 1.0
    return image


def where(image: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(p) for p in torch.nonzero(image[0, 0] > 0.5).tolist()]


def test_shift_views_move_whole_pixels_without_wrapping():
    assert where(apply_view(dot(5, 5), View(dx=1))) == [(5, 6)]
    assert where(apply_view(dot(5, 5), View(dy=-1))) == [(4, 5)]
    assert where(apply_view(dot(5, 5), View(dx=-2, dy=3))) == [(8, 3)]
    assert apply_view(dot(5, 27), View(dx=1)).sum() == 0  # off the edge, not round to column 0
    image = dot(3, 4)
    assert apply_view(image, IDENTITY) is image


def test_rotation_and_zoom_views_transform_and_keep_the_range():
    bar = torch.zeros(1, 1, 28, 28)
    bar[..., 4:24, 13:15] = 1.0  # a vertical stroke through the centre
    turned = apply_view(bar, View(angle=90.0))
    assert (
        turned[0, 0].sum(0).count_nonzero() > 15 and turned[0, 0].sum(1).count_nonzero() <= 4
    )  # now horizontal
    for view in VIEW_SETS["affine"]:
        out = apply_view(bar, view)
        assert out.shape == bar.shape and out.min() >= 0 and out.max() <= 1 + 1e-6
    blob = torch.zeros(1, 1, 28, 28)
    blob[..., 10:18, 10:18] = 1.0
    assert apply_view(blob, View(scale=1.1)).sum() == pytest.approx(64 * 1.21, rel=0.05)
    assert apply_view(blob, View(scale=0.9)).sum() == pytest.approx(64 * 0.81, rel=0.05)
    assert not torch.equal(apply_view(blob, View(angle=8.0)), blob)


def test_config_values_name_their_views():
    assert resolve_views(True) == SHIFTS and tta_name(True) == "shifts"
    assert resolve_views(False) == resolve_views(None) == (IDENTITY,) and tta_name(False) == "none"
    assert len(resolve_views("affine")) == 9 and len(set(resolve_views("affine"))) == 9
    with pytest.raises(
        ConfigError,
        match=r"tta='flips': expected true, false or one of none, shifts, rotations, zooms, affine",
    ):
        resolve_views("flips")


def test_a_sets_prediction_is_the_mean_over_its_views(compose_train, data_dir):
    model = load_checkpoint(train(compose_train("model=cnn", "report=false"))[0]["best_ckpt"])
    images = read_digits(data_dir / "test_labelled.csv.gz").images[:64]
    single = {
        view: predict_proba([model], images, tta=(view,), progress=False) for view in VIEW_SETS["affine"]
    }
    for name, views in VIEW_SETS.items():
        expected = np.mean([single[view] for view in views], axis=0)
        np.testing.assert_allclose(
            predict_proba([model], images, tta=name, progress=False, batch_size=32), expected, atol=1e-6
        )
    np.testing.assert_array_equal(
        predict_proba([model], images, tta=True, progress=False),
        predict_proba([model], images, tta="shifts", progress=False),
    )
    assert not np.allclose(single[View(angle=8.0)], single[IDENTITY])  # the network does see another image


def test_predict_cli_refuses_an_unknown_set_before_reading_checkpoints(tmp_path):
    done = run_cli(
        "predict.py",
        f"ckpt={tmp_path / 'missing.ckpt'}",
        "tta=flips",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "error: tta='flips': expected true, false or one of none, shifts" in done.stderr
    assert "missing.ckpt" not in done.stderr and "Traceback" not in done.stderr
