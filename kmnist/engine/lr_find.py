"""Lightning's learning-rate range test before a run (`tune.lr_find=true`): the loss curve as
`lr_find.png` and `lr_find.json` in the run directory, and, with `tune.use_suggestion`, the
suggested rate given to the optimiser (and to one-cycle's peak)."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
from omegaconf import DictConfig

from kmnist.engine.module import Classifier

log = logging.getLogger(__name__)


def find_lr(
    cfg: DictConfig, trainer: pl.Trainer, module: Classifier, datamodule, output_dir: Path
) -> float | None:
    """Lightning's LR range test; saves the plot and the suggestion into the run directory."""
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(trainer).lr_find(
        module,
        datamodule=datamodule,
        min_lr=cfg.tune.min_lr,
        max_lr=cfg.tune.max_lr,
        num_training=cfg.tune.num_training,
        update_attr=False,
    )
    suggestion = finder.suggestion() if finder is not None else None
    if finder is not None and trainer.is_global_zero:
        save_plot(finder, suggestion, cfg.model.name, output_dir)
    if suggestion:
        log.info("LR finder suggests %.2e", suggestion)
    else:  # Lightning needs more steps than it skips at both ends of the curve to pick a point
        log.warning(
            "LR finder found no learning rate to suggest (tune.num_training=%d steps: try more); "
            "training with the configured one",
            cfg.tune.num_training,
        )
    if suggestion and cfg.tune.use_suggestion:
        module.optimizer_factory = partial(module.optimizer_factory, lr=suggestion)
        # One-cycle peaks at max_lr: follow the suggestion there too.
        if module.scheduler_factory is not None and "max_lr" in module.scheduler_factory.keywords:
            module.scheduler_factory = partial(module.scheduler_factory, max_lr=suggestion)
    return suggestion


def save_plot(finder, suggestion: float | None, model: str, output_dir: Path) -> None:
    """The loss against the learning rate (`lr_find.png`) and the curve's numbers (`lr_find.json`)."""
    import matplotlib

    matplotlib.use("Agg")
    figure = finder.plot(suggest=suggestion is not None)
    figure.axes[0].set_title(
        f"LR finder ({model}): suggestion {suggestion:.2e}" if suggestion else "LR finder"
    )
    figure.savefig(output_dir / "lr_find.png", dpi=120, bbox_inches="tight")
    (output_dir / "lr_find.json").write_text(
        json.dumps({"suggestion": suggestion, "lr": finder.results["lr"], "loss": finder.results["loss"]})
    )
