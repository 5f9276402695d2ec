"""kmnist.callbacks.swa: an equal average of each epoch's weights from `start` on, in a real fit;
validation and checkpoints see the current weights until the first average exists."""

from __future__ import annotations

import pytest
import torch
from omegaconf import open_dict

from kmnist.engine.options import check_options
from kmnist.errors import ConfigError
from kmnist.tasks.train import train


def swa_config(compose_train, *overrides: str):
    cfg = compose_train(
        "model=cnn",
        "callbacks=[default,swa]",
        "report=false",
        "scheduler=none",
        "~callbacks.show_batch",
        *overrides,
    )
    with open_dict(cfg):
        cfg.trainer.max_epochs = 3
        cfg.callbacks.model_checkpoint.monitor = None  # every epoch's checkpoint kept
        cfg.callbacks.model_checkpoint.save_top_k = -1
        cfg.callbacks.model_checkpoint.filename = "epoch_{epoch:03d}"
    return cfg


def test_checkpoints_hold_the_equal_average_of_the_epochs_from_start(compose_train, tmp_path):
    metrics, _ = train(swa_config(compose_train, "callbacks.swa.start=1"))
    load = lambda epoch: torch.load(tmp_path / "checkpoints" / f"epoch_{epoch:03d}.ckpt", weights_only=True)  # noqa: E731
    first, second, third = load(0), load(1), load(2)

    # Epoch 0 comes before `start`: its checkpoint is the trained weights, with no averaging state.
    assert "current_model_state" not in first and "averaging_state" not in first
    # Epoch 1: an average of one, the weights themselves; epoch 2: the mean of epochs 1 and 2.
    assert (
        int(second["averaging_state"]["n_averaged"]) == 1 and int(third["averaging_state"]["n_averaged"]) == 2
    )
    for key, averaged in third["state_dict"].items():
        if averaged.is_floating_point():  # weights and BatchNorm statistics alike
            expected = (second["current_model_state"][key] + third["current_model_state"][key]) / 2
            torch.testing.assert_close(averaged, expected, rtol=1e-5, atol=1e-6, msg=key)
            torch.testing.assert_close(second["state_dict"][key], second["current_model_state"][key], msg=key)
    weight = next(k for k, v in third["state_dict"].items() if v.ndim == 4)
    assert not torch.equal(third["state_dict"][weight], third["current_model_state"][weight])
    # The training epochs moved the weights: epoch 0's checkpoint is not the untrained network.
    assert not torch.equal(first["state_dict"][weight], second["current_model_state"][weight])
    assert 0.0 <= metrics["val/acc"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["callbacks=[default,ema,swa]"], "callbacks.ema and callbacks.swa: pick one weight average"),
        (
            ["callbacks.swa.start=3"],
            "callbacks.swa.start=3: epoch 3 is past the last one (trainer.max_epochs=3)",
        ),
    ],
)
def test_misconfigured_averaging_is_one_line(compose_train, overrides, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        train(swa_config(compose_train, *overrides))


def test_an_experiments_leftover_ema_settings_do_not_block_swa(compose_train):
    # experiment=best_gpu sets callbacks.ema.decay; callbacks=[default,swa] (hparams_search=dev_average's
    # third arm) drops the EMA callback but keeps those settings, which must not count as an EMA.
    cfg = compose_train("experiment=best_gpu", "callbacks=[default,swa]")
    assert "decay" in cfg.callbacks.ema and "_target_" not in cfg.callbacks.ema
    check_options(cfg)
    with pytest.raises(ConfigError, match="pick one weight average"):
        check_options(compose_train("experiment=best_gpu", "callbacks=[default,ema,swa]"))
