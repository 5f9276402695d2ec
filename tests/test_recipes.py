"""Every named recipe composes to the values its source specifies: the course notebook's sections
(experiment=notebook_*), the flagship, and the Optuna searches. A config refactor that changes
any of these fails here, before a run ever starts."""

from __future__ import annotations

import pytest
from conftest import CONF
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from kmnist.engine.run_config import derive_run_config

# What each section of the course notebook trains with (the Keras defaults it relies on included).
NOTEBOOK = {
    "notebook_dnn": {
        "model.name": "dnn",
        "optim._target_": "torch.optim.Adam",
        "optim.lr": 0.001,
        "data.batch_size": 32,
        "trainer.max_epochs": 20,
        "data.split": "first_n",
        "data.val_rows": 1000,
    },
    "notebook_dnn_tuned": {
        "model.name": "dnn",
        "model.n_neurons": 150,
        "optim._target_": "torch.optim.NAdam",
        "optim.lr": 0.001,
        "optim.betas": [0.8, 0.999],
        "data.batch_size": 10,
        "trainer.max_epochs": 30,
        "data.split": "first_n",
        "data.val_rows": 1000,
        "callbacks.early_stopping.patience": 5,
    },
    "notebook_cnn": {
        "model.name": "cnn",
        "optim._target_": "torch.optim.Adam",
        "optim.lr": 0.001,
        "data.batch_size": 32,
        "trainer.max_epochs": 20,
        "data.split": "first_n",
        "data.val_rows": 1000,
    },
    "notebook_dcnn": {
        "model.name": "dcnn",
        "optim._target_": "torch.optim.SGD",
        "optim.lr": 0.1,
        "optim.momentum": 0.0,
        "data.batch_size": 32,
        "trainer.max_epochs": 50,
        "data.split": "first_n",
        "data.val_rows": 1000,
        "callbacks.early_stopping.patience": 8,
    },
    "notebook_convnet": {
        "model.name": "convnet",
        "optim._target_": "torch.optim.RMSprop",
        "optim.lr": 0.002,
        "optim.alpha": 0.9,
        "optim.momentum": 0.1,
        "optim.centered": True,
        "data.batch_size": 64,
        "trainer.max_epochs": 40,
        "data.split": "stratified",
        "data.val_fraction": 0.2,
        "data.seed": 42,
        "scheduler.fn._target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
        "scheduler.fn.factor": 0.25,
        "scheduler.fn.patience": 2,
        "scheduler.fn.min_lr": 1e-5,
        "scheduler.monitor": "train/loss",
    },
    "notebook_resnet50": {
        "model.name": "resnet50",
        "optim._target_": "torch.optim.Adam",
        "optim.lr": 0.001,
        "data.batch_size": 64,
        "data.split": "stratified",
        "data.val_fraction": 0.15,
        "data.seed": 5,
        "data.augment.rotation": 15,
        "data.augment.zoom": 0.15,
        "data.augment.warp": 0.05,
        "data.augment.lighting": 0.1,
        "tune.lr_find": True,
        "finetune.frozen_epochs": 4,
        "finetune.unfrozen_epochs": 5,
        "finetune.lr_min": 2e-6,
        "finetune.lr_max": 2e-3,
        "scheduler.fn": None,
    },
}
# The Keras sections run without a schedule or augmentation.
for name in ("notebook_dnn", "notebook_dnn_tuned", "notebook_cnn", "notebook_dcnn"):
    NOTEBOOK[name].update({"scheduler.fn": None, "data.augment.rotation": 0.0, "data.augment.erase_p": 0.0})

DEFAULT_CALLBACKS = {
    "model_checkpoint",
    "last_checkpoint",
    "early_stopping",
    "lr_monitor",
    "progress_bar",
    "show_batch",
    "train_timer",
    "epoch_seed",
    "checkpoint_on_interrupt",
}


def composed(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def select(cfg, key: str):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


@pytest.mark.parametrize("experiment", sorted(NOTEBOOK))
def test_notebook_recipe_composes_to_the_notebook_values(experiment):
    cfg = composed(f"experiment={experiment}")
    for key, want in NOTEBOOK[experiment].items():
        got = select(cfg, key)
        assert got == (pytest.approx(want) if isinstance(want, float) else want), (
            f"{experiment}: {key}={got!r}, expected {want!r}"
        )
    assert set(cfg.callbacks) == DEFAULT_CALLBACKS


def test_flagship_is_the_defaults_plus_ema():
    cfg = composed("experiment=best")
    assert set(cfg.callbacks) == DEFAULT_CALLBACKS | {"ema"}
    assert cfg.callbacks.model_checkpoint.monitor is None and cfg.callbacks.model_checkpoint.save_last
    # Without a monitor model_checkpoint keeps last.ckpt itself: the run drops the second one.
    run_cfg, _ = derive_run_config(cfg, ["val", "dev"], holds_out_validation=True)
    assert (
        set(run_cfg.callbacks) == DEFAULT_CALLBACKS - {"last_checkpoint"} | {"ema"}
        and "last_checkpoint" in cfg.callbacks
    )
    assert (
        cfg.model.name,
        cfg.optim._target_,
        cfg.optim.lr,
        cfg.data.batch_size,
        cfg.trainer.max_epochs,
    ) == ("kresnet", "torch.optim.AdamW", 0.004, 256, 25)
    assert cfg.trainer.precision == "auto"  # bf16 only where the CPU computes it natively (test_precision.py)
    gpu = composed("experiment=best_gpu")
    assert set(gpu.callbacks) == set(cfg.callbacks) and gpu.speed.cuda_graph and gpu.data.on_device
    assert gpu.callbacks.ema.decay == 0.99 and cfg.callbacks.ema.decay != 0.99


def test_optuna_searches_share_one_sweeper():
    base, resnet = (
        composed(f"hparams_search={name}").hydra.sweeper for name in ("optuna", "optuna_resnet50")
    )
    for key in ("_target_", "direction", "n_jobs"):
        assert base[key] == resnet[key]
    assert base.sampler.seed == resnet.sampler.seed == 1234
    assert (base.study_name, base.n_trials, base.sampler.n_startup_trials) == (
        "cnn",
        20,
        8,
    )  # the default model
    assert (resnet.study_name, resnet.n_trials, resnet.sampler.n_startup_trials) == ("cnn_finetune", 10, 4)
    assert base.storage.endswith("/multirun/optuna/cnn/study.db")
    assert "model.dropout" in base.params and "model.dropout" not in resnet.params  # resnet50 has no dropout
    assert set(resnet.params) == {"optim.lr", "optim.weight_decay", "data.batch_size", "loss.label_smoothing"}
