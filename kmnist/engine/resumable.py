"""`ckpt_path=...` checked before Lightning restores it. A file that is not a train.py checkpoint,
one of another network, or a one-cycle schedule that has already ended would otherwise fail deep
inside `trainer.fit` (a KeyError, a state-dict mismatch, OneCycleLR's "Tried to step N times")."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kmnist.engine.checkpoint_file import read_checkpoint
from kmnist.engine.inference import LEGACY_MODEL_KEYS, WEIGHT_SOURCE_KEYS
from kmnist.errors import CheckpointError


def _model_options(model: dict) -> dict:
    """The options that shape the network (not where its first weights came from: offline, a
    fine-tuning run resumes with model.pretrained=false or model.weights=PATH)."""
    return {k: v for k, v in model.items() if k not in LEGACY_MODEL_KEYS + WEIGHT_SOURCE_KEYS}


def check_resume_checkpoint(path: str, cfg: DictConfig) -> None:
    ckpt = read_checkpoint(Path(path), f"ckpt_path={path}")
    if not isinstance(ckpt, dict) or "pytorch-lightning_version" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"ckpt_path={path}: not a training checkpoint written by train.py "
            "(it has no Lightning training state)"
        )
    saved = (ckpt.get("hyper_parameters") or {}).get("config") or {}
    if saved.get("model"):
        before, now = (
            _model_options(saved["model"]),
            _model_options(OmegaConf.to_container(cfg.model, resolve=True)),
        )
        for key in sorted(set(before) | set(now), key=lambda k: (k != "name", k)):  # the network first
            if before.get(key) != now.get(key):
                raise CheckpointError(
                    f"ckpt_path={path}: trained with model.{key}={before.get(key)}, this run has "
                    f"model.{key}={now.get(key)}; resume with the options it was trained with "
                    "(its run's .hydra/config.yaml)"
                )
    if saved.get("data"):
        _check_same_split(path, saved["data"], OmegaConf.to_container(cfg.data, resolve=True))
    target = str(((saved.get("scheduler") or {}).get("fn") or {}).get("_target_", ""))
    epochs = (saved.get("trainer") or {}).get("max_epochs")
    wanted = cfg.trainer.get("max_epochs")
    # Fewer epochs is fine (the run stops early on the old schedule); more would step past its end.
    if (
        target.endswith("OneCycleLR")
        and isinstance(epochs, int)
        and isinstance(wanted, int)
        and wanted > epochs
    ):
        raise CheckpointError(
            f"ckpt_path={path}: its one-cycle schedule was laid out for trainer.max_epochs={epochs} "
            f"and cannot be stretched to {wanted}; resume with trainer.max_epochs={epochs}, "
            "or train a new run"
        )
    if target.endswith("OneCycleLR") or saved.get("finetune"):  # fine-tuning runs a one-cycle per stage
        _check_same_schedule(path, saved, cfg)


# What lays out a one-cycle schedule's steps (with trainer.max_epochs, above; fine-tuning's stages too).
# Restored, the schedule keeps its old length: more steps an epoch would step past its end ("Tried to
# step N times") after hours of training; fewer would stop it before the LR has come down.
SCHEDULE_KEYS = (
    "data.batch_size",
    "trainer.accumulate_grad_batches",
    "trainer.limit_train_batches",
    "finetune.frozen_epochs",
    "finetune.unfrozen_epochs",
    "finetune.pct_start",
    "scheduler.fn.pct_start",
)


# Lightning's values for Trainer arguments conf/trainer leaves out (+trainer.accumulate_grad_batches=2).
TRAINER_DEFAULTS = {"trainer.accumulate_grad_batches": 1, "trainer.limit_train_batches": 1.0}


def _check_same_schedule(path: str, saved: dict, cfg: DictConfig) -> None:
    for key in SCHEDULE_KEYS:
        default = TRAINER_DEFAULTS.get(key, _MISSING)
        before, current = _lookup(saved, key, default), OmegaConf.select(cfg, key, default=None)
        current = default if current is None else current
        if before is _MISSING or _meaning(key, before) == _meaning(key, current):
            continue
        if current is _MISSING:  # another scheduler, or no finetune=: the key itself is not there to set
            raise CheckpointError(
                f"ckpt_path={path}: its one-cycle schedule was laid out for {key}={before}, "
                f"this run has no {key} (another scheduler= or finetune=); resume with the options "
                "it was trained with (its run's .hydra/config.yaml), or train a new run"
            )
        raise CheckpointError(
            f"ckpt_path={path}: its one-cycle schedule was laid out for {key}={before}, this run has "
            f"{key}={current}; resume with {key}={before}, or train a new run"
        )


def _meaning(key: str, value):
    """Lightning reads an int limit_train_batches as a number of batches, a float as a share of the epoch:
    1 (one batch) is not 1.0 (all of them), though Python's == says they are."""
    if (
        key == "trainer.limit_train_batches"
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return ("share" if isinstance(value, float) else "batches", value)
    return value


_MISSING = object()


def _lookup(config: dict, dotted: str, default=_MISSING):
    for part in dotted.split("."):
        if not isinstance(config, dict) or part not in config or config[part] is None:
            return default
        config = config[part]
    return config


# What decides which rows validate, by data.split: resumed with another value, the held-out rows
# would be rows the network trained on (seed 0 holds out other writers than seed 42) and val/acc
# would read high, without a word.
SPLIT_KEYS = {
    "writer": ("val_writers", "seed"),
    "stratified": ("val_fraction", "seed"),
    "first_n": ("val_rows",),
}


def _check_same_split(path: str, before: dict, now: dict) -> None:
    keys = ("split", "train_file", "limit_rows", *SPLIT_KEYS.get(str(now.get("split")), ()))
    for key in keys:
        if key in before and before.get(key) != now.get(key):
            option = "seed" if key == "seed" else f"data.{key}"  # data.seed follows the run's seed
            raise CheckpointError(
                f"ckpt_path={path}: trained with {option}={before.get(key)}, "
                f"this run has {option}={now.get(key)}: the held-out rows would differ from those it was "
                f"validated on; resume with {option}={before.get(key)}"
            )
