"""`ckpt_path=...` checked before Lightning restores it. A file that is not a train.py checkpoint,
one of another network, or a one-cycle schedule that has already ended would otherwise fail deep
inside `trainer.fit` (a KeyError, a state-dict mismatch, OneCycleLR's "Tried to step N times")."""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from kmnist.engine.inference import LEGACY_MODEL_KEYS, UNREADABLE_CHECKPOINT, WEIGHT_SOURCE_KEYS
from kmnist.errors import CheckpointError


def _model_options(model: dict) -> dict:
    """The options that shape the network (not where its first weights came from: offline, a
    fine-tuning run resumes with model.pretrained=false or model.weights=PATH)."""
    return {k: v for k, v in model.items() if k not in LEGACY_MODEL_KEYS + WEIGHT_SOURCE_KEYS}


def check_resume_checkpoint(path: str, cfg: DictConfig) -> None:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE_CHECKPOINT as err:
        detail = (str(err).strip().splitlines() or [""])[0][:120]
        raise CheckpointError(f"ckpt_path={path}: cannot be read as a checkpoint ({type(err).__name__}: {detail})") from None
    if not isinstance(ckpt, dict) or "pytorch-lightning_version" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"ckpt_path={path}: not a training checkpoint written by train.py (it has no Lightning training state)")
    saved = (ckpt.get("hyper_parameters") or {}).get("config") or {}
    if saved.get("model"):
        before, now = _model_options(saved["model"]), _model_options(OmegaConf.to_container(cfg.model, resolve=True))
        for key in sorted(set(before) | set(now), key=lambda k: (k != "name", k)):  # the network first
            if before.get(key) != now.get(key):
                raise CheckpointError(f"ckpt_path={path}: trained with model.{key}={before.get(key)}, this run has "
                                      f"model.{key}={now.get(key)}; resume with the options it was trained with (its run's .hydra/config.yaml)")
    target = str(((saved.get("scheduler") or {}).get("fn") or {}).get("_target_", ""))
    epochs = (saved.get("trainer") or {}).get("max_epochs")
    wanted = cfg.trainer.get("max_epochs")
    # Fewer epochs is fine (the run stops early on the old schedule); more would step past its end.
    if target.endswith("OneCycleLR") and isinstance(epochs, int) and isinstance(wanted, int) and wanted > epochs:
        raise CheckpointError(f"ckpt_path={path}: its one-cycle schedule was laid out for trainer.max_epochs={epochs} and cannot be "
                              f"stretched to {wanted}; resume with trainer.max_epochs={epochs}, or train a new run")
