"""Optimisers and learning-rate schedules, built from the config's partials: the one place a
module's `configure_optimizers` is answered, for a plain run and for each fastai fine-tuning stage."""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import OmegaConf
from torch import nn

from kmnist.callbacks.finetune import layer_groups
from kmnist.errors import ConfigError


def plain_partial(factory: partial | None) -> partial | None:
    """`factory` with its OmegaConf arguments as plain containers: Hydra passes `betas: [0.9, 0.999]`
    as a ListConfig, which an optimiser that keeps it as given (NAdam) puts into its state dict,
    and then no checkpoint loads with `torch.load(weights_only=True)`."""
    if factory is None or not any(OmegaConf.is_config(v) for v in factory.keywords.values()):
        return factory
    keywords = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in factory.keywords.items()
    }
    return partial(factory.func, *factory.args, **keywords)


@contextmanager
def naming(option: str):
    """A value torch refuses while building (betas out of range, an unknown keyword) is one line
    naming the config group it came from, not a traceback from inside `trainer.fit`."""
    try:
        yield
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{option}: {err}") from err


def param_groups(net: nn.Module) -> list[dict[str, Any]] | Any:
    """Parameters for the optimiser; a network may define `param_groups()` (discriminative LRs)."""
    groups = getattr(net, "param_groups", None)
    return groups() if callable(groups) else net.parameters()


def discriminative_lrs(lr_min: float, lr_max: float, n: int) -> list[float]:
    """Geometric spread from lr_min (stem) to lr_max (head), like fastai's `slice(lr_min, lr_max)`."""
    if n == 1:
        return [lr_max]
    return [lr_min * (lr_max / lr_min) ** (i / (n - 1)) for i in range(n)]


def stage_optimizer(
    net: nn.Module, optimizer_factory: partial, stage: str, head_lr: float, lr_min: float, lr_max: float
):
    """The optimizer of a fine-tuning stage, every group built up front: the head alone, or all groups."""
    groups = layer_groups(net)
    if stage == "frozen":
        return optimizer_factory(params=[{"params": list(groups[-1].parameters()), "lr": head_lr}]), [head_lr]
    lrs = discriminative_lrs(lr_min, lr_max, len(groups))
    params = [{"params": list(group.parameters()), "lr": lr} for group, lr in zip(groups, lrs)]
    return optimizer_factory(params=params), lrs


def one_cycle_steps(total_steps: int, pct_start: float) -> int:
    """OneCycleLR divides by zero when its warm-up ends on step 0 (tiny debug runs): pad the length."""
    return max(int(total_steps), math.ceil(2 / pct_start) + 1)


def momentum_free(optimizer: torch.optim.Optimizer) -> bool:
    """Configured with momentum 0 (plain SGD, RMSprop): OneCycleLR's default momentum cycle (0.95 ->
    0.85) would give it the heavy-ball momentum its config says it has not. With no momentum at all
    (Adagrad, Adadelta), OneCycleLR would refuse to build."""
    return "betas" not in optimizer.defaults and not optimizer.defaults.get("momentum")


def one_cycle(
    optimizer: torch.optim.Optimizer, max_lrs: list[float], total_steps: int, pct_start: float = 0.25
):
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lrs,
        total_steps=one_cycle_steps(total_steps, pct_start),
        pct_start=pct_start,
        cycle_momentum=not momentum_free(optimizer),
    )


def schedule_length(
    factory: partial, interval: str, trainer: pl.Trainer, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Fill in a scheduler's length from the trainer when its config leaves it out (and, for an
    optimiser without momentum, leave its momentum alone)."""
    params = inspect.signature(factory.func).parameters
    length = trainer.estimated_stepping_batches if interval == "step" else trainer.max_epochs
    fill = {}
    if (
        "total_steps" in params
        and factory.keywords.get("total_steps") is None
        and factory.keywords.get("epochs") is None
    ):
        fill["total_steps"] = one_cycle_steps(length, factory.keywords.get("pct_start", 0.3))
    if "T_max" in params and factory.keywords.get("T_max") is None:
        fill["T_max"] = int(length)
    if (
        "cycle_momentum" in params
        and "cycle_momentum" not in factory.keywords
        and optimizer is not None
        and momentum_free(optimizer)
    ):
        fill["cycle_momentum"] = False
    return fill


def build_optimizers(module: pl.LightningModule):
    """What `configure_optimizers` returns: the optimiser over the network's parameter groups and
    its scheduler (sized to the run), or under fine-tuning the current stage's pair."""
    hparams, trainer = module.hparams, module.trainer
    if hparams.finetune:
        return finetune_optimizers(module)
    with naming("optim"):
        optimizer = module.optimizer_factory(params=param_groups(module.net))
    if module.scheduler_factory is None:
        return optimizer
    length = schedule_length(module.scheduler_factory, hparams.scheduler_interval, trainer, optimizer)
    with naming("scheduler.fn"):
        scheduler = module.scheduler_factory(optimizer=optimizer, **length)
    config = {"scheduler": scheduler, "interval": hparams.scheduler_interval}
    if hparams.scheduler_monitor:
        config["monitor"] = hparams.scheduler_monitor
    return {"optimizer": optimizer, "lr_scheduler": config}


def finetune_optimizers(module: pl.LightningModule):
    """One optimizer + one-cycle schedule per fine-tuning stage, sized to that stage's steps."""
    ft, trainer = module.hparams.finetune, module.trainer
    steps_per_epoch = trainer.estimated_stepping_batches / max(trainer.max_epochs, 1)
    epochs = ft["frozen_epochs"] if module.stage == "frozen" else ft["unfrozen_epochs"]
    with naming("optim"):
        optimizer, lrs = stage_optimizer(
            module.net,
            module.optimizer_factory,
            module.stage or "unfrozen",
            head_lr=module.optimizer_factory.keywords.get("lr", 1e-3),
            lr_min=ft["lr_min"],
            lr_max=ft["lr_max"],
        )
    with naming("finetune"):
        scheduler = one_cycle(
            optimizer,
            lrs,
            total_steps=int(round(steps_per_epoch * epochs)),
            pct_start=ft.get("pct_start", 0.25),
        )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
