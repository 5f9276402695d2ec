"""One training run of the accuracy pipeline: train.py's config with the pipeline's `train`
overrides and the run's own, saved like a Hydra run so it can be read and run alone, and, in a
resumed pipeline, reused when finished or continued from its last.ckpt when cut off."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from kmnist.errors import ConfigError
from kmnist.tasks.resume import check_same_run, finished_run, interrupted_checkpoint
from kmnist.utils.atomic import atomic_write_text
from kmnist.utils.overrides import quoted

log = logging.getLogger(__name__)


def compose_run(overrides: list[str], output_dir: Path) -> DictConfig:
    """train.py's config with these overrides and the run's folder (written by `save_run`)."""
    return hydra.compose(config_name="config", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def save_run(cfg: DictConfig, overrides: list[str], output_dir: Path) -> None:
    """Write the run's `.hydra/config.yaml` and `overrides.yaml` like a Hydra run, so each pipeline run
    can be read and run alone (a resumed run's name the ckpt_path it resumed from)."""
    atomic_write_text(output_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(
        output_dir / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides)))
    )


def run_data_overrides(pipeline: DictConfig) -> list[str]:
    """What every training run of the pipeline reads: its data folder, and the dev file as data.val_file."""
    dev = pipeline.paths.dev_file
    return [f"paths.data_dir={quoted(pipeline.paths.data_dir)}"] + (
        [f"data.val_file={quoted(dev)}"] if dev else []
    )


def train_run(pipeline: DictConfig, overrides: list[str], output_dir: Path) -> tuple[str, float]:
    """One training run (a kmnist run directory) of the `pipeline` config: its best checkpoint and
    training seconds. In a resumed pipeline a finished run is reused and a cut-off one continues
    from its last.ckpt."""
    from kmnist.tasks.train import train

    overrides = [*pipeline.train, *run_data_overrides(pipeline), *overrides]
    cfg = compose_run(overrides, output_dir)
    check_same_run(output_dir, cfg)  # a folder trained with another recipe is never mixed in
    if done := finished_run(output_dir):
        log.info("%s: trained already; reusing %s", output_dir, done[0])
        return done
    if last := interrupted_checkpoint(output_dir):
        log.info("%s: resuming from %s", output_dir, last)
        overrides = [*overrides, f"ckpt_path={quoted(last)}"]
        cfg = compose_run(overrides, output_dir)
    save_run(cfg, overrides, output_dir)
    metrics, _ = train(cfg)
    checkpoint = metrics.get("best_ckpt")
    if not checkpoint:
        raise ConfigError(f"{output_dir}: the run saved no checkpoint (is callbacks.model_checkpoint off?)")
    return checkpoint, float(metrics["train_seconds"])
