"""Continuing a pipeline in its own folder (`resume=DIR`): a run that finished is reused, one that
was cut off resumes from its `last.ckpt`, and a folder made with another config is refused.

A 2-core CPU pipeline takes hours, longer than a session or a preemptible job may last; without
this, a cut-off pipeline had to train every member again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kmnist.errors import ConfigError

log = logging.getLogger(__name__)

# Keys that may differ between the first command and its resumption: a training run's checkpoint
# to resume from, and the pipeline's options that decide how far it goes and how it predicts, not
# what trained (the rounds, the student, the views, the precision and batch of predictions).
MAY_DIFFER = frozenset({"resume", "ckpt_path", "pseudo_label.rounds", "distill.enabled", "dig_file", "tta", "precision",
                        "batch_size", "accelerator"})


def first_difference(old, new, where: str = "") -> str | None:
    """The first dotted key whose value differs between two plain (unresolved) configs, as
    `key: old -> new`, leaving out MAY_DIFFER; None when they are the same."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            name = f"{where}.{key}" if where else str(key)
            if name in MAY_DIFFER:
                continue
            if key not in old or key not in new:
                return f"{name}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}"
            if found := first_difference(old[key], new[key], name):
                return found
        return None
    return None if old == new else f"{where}: {old!r} -> {new!r}"


def saved_config(folder: Path) -> dict | None:
    """The config a Hydra run (or a pipeline's training run) saved in `folder/.hydra/config.yaml`."""
    path = folder / ".hydra" / "config.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None


def check_same_config(folder: Path, cfg: DictConfig) -> None:
    """Refuse to continue in `folder` with a config other than the one it was made with."""
    old = saved_config(folder)
    if old is None:
        return
    if diff := first_difference(old, OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError(f"resume: {folder} was made with another config ({diff}); repeat the first command's "
                          f"options, or delete {folder} to start it anew")


def pipeline_folder(resume: str, cfg: DictConfig) -> Path:
    """The folder `resume=DIR` names, checked: a pipeline's, made with this config."""
    folder = Path(resume).expanduser().resolve()
    if saved_config(folder) is None:
        raise ConfigError(f"resume={resume}: not a pipeline folder (no .hydra/config.yaml in {folder})")
    check_same_config(folder, cfg)
    log.info("resuming the pipeline in %s: finished runs are reused, a cut-off one resumes", folder)
    return folder


def finished_run(folder: Path) -> tuple[str, float] | None:
    """(best checkpoint, training seconds) of a training run that finished (wrote metrics.json), else None."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    checkpoint = metrics.get("best_ckpt")
    if not checkpoint or not Path(checkpoint).is_file():
        return None
    return checkpoint, float(metrics.get("train_seconds", 0.0))


def interrupted_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a cut-off training run resumes from: its latest epoch's `last.ckpt`."""
    path = folder / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None
