"""fastai-style fine-tuning, the LR finder, and every notebook recipe through a real Trainer."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from kmnist.callbacks.finetune import FineTuneStages, layer_groups
from kmnist.engine.optimizers import discriminative_lrs
from kmnist.errors import ConfigError
from kmnist.models import create_model
from kmnist.tasks.train import train

EXPERIMENTS = sorted(
    p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "experiment").glob("notebook_*.yaml")
)


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_discriminative_lrs_are_geometric_and_increasing():
    lrs = discriminative_lrs(2e-6, 2e-3, 6)
    assert lrs[0] == pytest.approx(2e-6) and lrs[-1] == pytest.approx(2e-3)
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]
    assert all(r == pytest.approx(ratios[0]) for r in ratios) and ratios[0] > 1


class _Recorder(FineTuneStages):
    """Records, at every training step, the trainable parameter count and the optimiser's groups."""

    def __init__(self, frozen_epochs):
        super().__init__(frozen_epochs)
        self.seen = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        body = layer_groups(pl_module.net)[:-1]
        bn_training = [
            m.training
            for g in body
            for m in g.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        ]
        optimizer = trainer.optimizers[0]
        self.seen.setdefault(
            trainer.current_epoch,
            {
                "trainable": trainable(pl_module.net),
                "group_lrs": [
                    g["initial_lr"] if "initial_lr" in g else g["lr"] for g in optimizer.param_groups
                ],
                "max_lrs": [g.get("max_lr") for g in optimizer.param_groups],
                "bn_training": bn_training,
            },
        )


def test_stages_freeze_then_unfreeze_with_discriminative_lrs(compose_train, monkeypatch):
    cfg = compose_train(
        "model=cnn",
        "finetune=fastai",
        "finetune.frozen_epochs=1",
        "finetune.unfrozen_epochs=1",
        "finetune.lr_min=1e-5",
        "finetune.lr_max=1e-3",
    )
    recorder = _Recorder(1)
    monkeypatch.setattr("kmnist.tasks.train.FineTuneStages", lambda frozen_epochs: recorder)
    train(cfg)

    net = create_model("cnn")
    head = trainable(layer_groups(net)[-1])
    assert recorder.seen[0]["trainable"] == head, "stage 1 trains the head only"
    assert recorder.seen[1]["trainable"] == trainable(net), "stage 2 trains everything"
    assert len(recorder.seen[0]["max_lrs"]) == 1
    stage2 = recorder.seen[1]["max_lrs"]
    assert stage2 == pytest.approx(discriminative_lrs(1e-5, 1e-3, len(layer_groups(net))))


@pytest.mark.slow
def test_frozen_batchnorm_stays_in_eval_mode(compose_train, monkeypatch):
    cfg = compose_train(
        "model=convnet", "finetune=fastai", "finetune.frozen_epochs=1", "finetune.unfrozen_epochs=1"
    )
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 2
    recorder = _Recorder(1)
    monkeypatch.setattr("kmnist.tasks.train.FineTuneStages", lambda frozen_epochs: recorder)
    train(cfg)
    assert recorder.seen[0]["bn_training"] and not any(recorder.seen[0]["bn_training"])
    assert all(recorder.seen[1]["bn_training"])


def test_lr_finder_saves_plot_and_uses_suggestion(compose_train, tmp_path):
    cfg = compose_train("model=cnn", "tune.lr_find=true", "tune.num_training=30")
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 40  # the range test needs enough steps to suggest
    metrics, _ = train(cfg)
    saved = json.loads((tmp_path / "lr_find.json").read_text())
    assert saved["suggestion"] is not None and 1e-6 <= saved["suggestion"] <= 1.0
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000
    assert saved["suggestion"] == pytest.approx(metrics["lr_find/suggestion"])
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    lr_logged = [
        v for k, v in ckpt["optimizer_states"][0]["param_groups"][0].items() if k in ("lr", "max_lr")
    ]
    assert any(v == pytest.approx(saved["suggestion"]) for v in lr_logged)


def test_a_fine_tuning_run_of_no_epochs_is_refused(compose_train):
    # The two stages make up trainer.max_epochs: 0 + 0 trained nothing and reported the untrained network.
    cfg = compose_train(
        "model=cnn",
        "finetune=fastai",
        "finetune.frozen_epochs=0",
        "finetune.unfrozen_epochs=0",
        "report=false",
    )
    with pytest.raises(
        ConfigError, match=r"^finetune.frozen_epochs=0 and finetune.unfrozen_epochs=0: no epoch to train"
    ):
        train(cfg)


def test_fine_tuning_a_network_without_a_body_and_a_head_is_one_line(compose_train):
    # The DNN is one Sequential (one layer group): this was a ValueError's traceback from inside trainer.fit.
    cfg = compose_train(
        "model=dnn",
        "finetune=fastai",
        "finetune.frozen_epochs=1",
        "finetune.unfrozen_epochs=1",
        "report=false",
    )
    with pytest.raises(ConfigError, match=r"^finetune: model\.name=dnn \(DNN\) has 1 layer group"):
        train(cfg)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_trains_with_its_recipe(compose_train, experiment):
    """One real step of each notebook recipe: its network and optimiser are the ones built, the
    weights move, and the loss is a number (the composed values themselves: test_recipes.py)."""
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true"]
    if experiment == "notebook_resnet50":
        overrides.append("model.pretrained=false")
    cfg = compose_train(*overrides)
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = None
        cfg.trainer.limit_val_batches = None
        cfg.data.batch_size = min(cfg.data.batch_size, 16)
    metrics, run = train(cfg)
    assert type(run.module.net).__module__ == f"kmnist.models.{cfg.model.name}"
    assert type(run.trainer.optimizers[0]).__name__ == cfg.optim._target_.rsplit(".", 1)[1]
    assert run.trainer.global_step >= 1 and math.isfinite(metrics["train/loss"])


def test_notebook_resnet50_both_stages_from_local_weights(compose_train, tmp_path):
    timm = pytest.importorskip("timm")
    weights = tmp_path / "resnet50_imagenet.pth"
    torch.save(timm.create_model("resnet50", num_classes=1000).state_dict(), weights)
    cfg = compose_train(
        "experiment=notebook_resnet50",
        f"model.weights={weights}",
        "finetune.frozen_epochs=1",
        "finetune.unfrozen_epochs=1",
        "tune.num_training=8",
        "data.limit_rows=1280",
        "data.val_fraction=0.1",
    )
    with open_dict(cfg):
        cfg.trainer.limit_train_batches = 2
        cfg.trainer.limit_val_batches = 1
        cfg.data.batch_size = 16
    metrics, _ = train(cfg)
    assert metrics["epochs"] == 2 and Path(metrics["best_ckpt"]).is_file()
    assert (tmp_path / "lr_find.png").is_file()


@pytest.mark.slow
def test_a_run_resumed_in_its_unfrozen_stage_continues_it(compose_train, tmp_path):
    """Lightning builds the optimiser before it restores the epoch count: the stage must come back with
    the checkpoint, or the head-only optimiser meets the saved stage-2 one (a ValueError on load)."""
    cfg = compose_train(
        "model=cnn",
        "finetune=fastai",
        "finetune.frozen_epochs=1",
        "finetune.unfrozen_epochs=2",
        "report=false",
        "~callbacks.show_batch",
    )
    with open_dict(cfg):
        cfg.callbacks.model_checkpoint.monitor = None  # every epoch's checkpoint kept
        cfg.callbacks.model_checkpoint.save_top_k = -1
        cfg.callbacks.model_checkpoint.filename = "epoch_{epoch:03d}"
    train(copy.deepcopy(cfg))
    straight = torch.load(tmp_path / "checkpoints" / "epoch_002.ckpt", weights_only=True)
    middle = torch.load(tmp_path / "checkpoints" / "epoch_001.ckpt", weights_only=True)
    groups = len(layer_groups(create_model("cnn")))
    assert (
        middle["finetune_stage"] == "unfrozen"
        and len(middle["optimizer_states"][0]["param_groups"]) == groups
    )

    with open_dict(cfg):
        cfg.paths.output_dir = cfg.paths.log_dir = str(tmp_path / "resumed")
        cfg.ckpt_path = str(tmp_path / "checkpoints" / "epoch_001.ckpt")
    train(cfg)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "epoch_002.ckpt", weights_only=True)
    assert (
        resumed["finetune_stage"] == "unfrozen"
        and len(resumed["optimizer_states"][0]["param_groups"]) == groups
    )
    # The last epoch trained the whole network on, as in the uninterrupted run.
    for key, weight in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], weight, msg=key)
