"""kmnist.callbacks.ema: the same average as torch's EMA reference, inside a real Lightning fit."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import open_dict
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from kmnist.callbacks.ema import EMA, ExponentialAverage
from kmnist.tasks.train import train


def test_exponential_average_matches_torchs_ema():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)
    )
    ours = ExponentialAverage(net, decay=0.9)
    reference = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for _ in range(6):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        net(torch.randn(8, 1, 28, 28))  # moves BatchNorm's running statistics
        ours.update_parameters(net)
        reference.update_parameters(net)
    for (name, a), (_, b) in zip(ours.module.state_dict().items(), reference.module.state_dict().items()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert int(ours.n_averaged) == 6
    # The average lags the model: it is not just a copy.
    assert not torch.allclose(ours.module[0].weight, net[0].weight)


@pytest.mark.slow
def test_fit_checkpoints_the_average_and_resumes_its_count(compose_train, tmp_path):
    cfg = compose_train(
        "experiment=best",
        "callbacks.ema.update_starting_at_step=0",
        "callbacks.ema.decay=0.5",
        "~callbacks.show_batch",
        "scheduler=none",
    )  # a fixed LR, so the run can be extended
    with open_dict(cfg):
        cfg.data.batch_size = 32
    metrics, _ = train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    averaged, current = ckpt["state_dict"], ckpt["current_model_state"]
    key = next(k for k in averaged if k.endswith("weight") and averaged[k].ndim == 4)
    assert not torch.equal(averaged[key], current[key])  # validation and checkpoints see the average
    assert int(ckpt["averaging_state"]["n_averaged"]) == 6  # one update per step (limit_train_batches=6)
    assert 0.0 <= metrics["val/acc"] <= 1.0

    # Resumed for one more epoch: the count continues from the checkpoint, read once.
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
        cfg.ckpt_path = str(tmp_path / "checkpoints" / "last.ckpt")
    train(copy.deepcopy(cfg))
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(resumed["averaging_state"]["n_averaged"]) == 12


@pytest.mark.slow
def test_run_report_evaluates_the_averaged_weights_that_validation_scored(compose_train, tmp_path):
    cfg = compose_train(
        "experiment=best",
        "callbacks.ema.update_starting_at_step=0",
        "callbacks.ema.decay=0.5",
        "~callbacks.show_batch",
    )
    with open_dict(cfg):
        cfg.data.batch_size = 32
        cfg.trainer.limit_val_batches = None  # the whole split, as the report evaluates it
    metrics, _ = train(cfg)
    assert metrics["val/accuracy"] == pytest.approx(metrics["val/acc"], abs=1e-6)


@pytest.mark.slow
def test_an_average_that_never_started_leaves_validation_and_checkpoints_the_trained_weights(
    compose_train, tmp_path
):
    # update_starting_at_step past the run's 6 steps: the average stays a copy of the untrained network,
    # which Lightning's WeightAveraging would validate, checkpoint and hand back at the end.
    cfg = compose_train(
        "experiment=best",
        "callbacks.ema.update_starting_at_step=1000",
        "~callbacks.show_batch",
        "scheduler=none",
        "optim.lr=0.01",
        "validate_best=false",
    )  # no reload: the callback keeps its untrained copy
    with open_dict(cfg):
        cfg.data.batch_size = 32
        cfg.trainer.limit_val_batches = None
    metrics, trained = train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (
        "current_model_state" not in ckpt and "averaging_state" not in ckpt
    )  # the trained weights, saved plainly
    (ema,) = [c for c in trained.trainer.callbacks if isinstance(c, EMA)]
    untrained = ema._average_model.module.state_dict()
    final = trained.module.state_dict()
    key = next(k for k in final if k.endswith("weight") and final[k].ndim == 4)
    assert int(ema._average_model.n_averaged) == 0
    assert not torch.equal(final[key], untrained[key])  # training did not end by loading the untrained copy
    torch.testing.assert_close(ckpt["state_dict"][key], final[key])  # and the checkpoint holds what trained
    assert metrics["val/accuracy"] == pytest.approx(
        metrics["val/acc"], abs=1e-6
    )  # the report scores what validation did
