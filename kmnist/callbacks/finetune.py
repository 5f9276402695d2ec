"""fastai-style fine-tuning as a Lightning callback: freeze, one-cycle the head, unfreeze,
one-cycle everything with discriminative learning rates.

    python train.py model=resnet50 +finetune.frozen_epochs=4 ...   (or experiment=notebook_resnet50)

Lightning's `BaseFinetuning` is not used for the stages: its `freeze` turns BatchNorm's running
statistics off rather than keeping the layers in eval mode, and `unfreeze_and_add_param_group`
adds groups mid-run, which breaks `OneCycleLR` (the schedule is built for the groups it saw). So
each stage gets a fresh optimizer and one-cycle schedule over its own steps, through
`strategy.setup_optimizers`, with every parameter group built up front (kmnist.engine.optimizers).
"""

from __future__ import annotations

import lightning.pytorch as pl
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kmnist.errors import ConfigError


def layer_groups(net: nn.Module, model_name: str | None = None) -> list[nn.Module]:
    """Stem ... head. A network may define `layer_groups()`; otherwise its top-level children."""
    groups = net.layer_groups() if hasattr(net, "layer_groups") else list(net.children())
    if len(groups) < 2:
        which = f"model.name={model_name} ({type(net).__name__})" if model_name else type(net).__name__
        raise ConfigError(
            f"finetune: {which} has {len(groups)} layer group(s); fine-tuning needs a body and a head "
            f"(e.g. model=cnn, kresnet or resnet50), or leave finetune out"
        )
    return groups


def set_trainable(modules: list[nn.Module], trainable: bool) -> None:
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(trainable)


def frozen_batchnorm_to_eval(modules: list[nn.Module]) -> None:
    """Frozen BatchNorm keeps its ImageNet running statistics: eval mode, no updates."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, _BatchNorm):
                layer.eval()


class FineTuneStages(pl.Callback):
    """Stage 1 (`frozen_epochs`): body frozen (BatchNorm in eval mode), head trained. Stage 2:
    everything trained with discriminative LRs. The module reads `stage` in configure_optimizers."""

    def __init__(self, frozen_epochs: int):
        self.frozen_epochs = frozen_epochs

    def _body(self, pl_module) -> list[nn.Module]:
        return layer_groups(pl_module.net)[:-1]

    def _apply(self, pl_module, stage: str) -> None:
        pl_module.stage = stage
        body = self._body(pl_module)
        set_trainable(body, stage == "unfrozen")
        if stage == "unfrozen":
            for module in body:
                module.train()  # BatchNorm resumes updating its statistics

    def on_fit_start(self, trainer, pl_module) -> None:
        # The module's stage, not the epoch: on resume Lightning restores the epoch count only after
        # this hook, while the stage came back with the weights (Classifier.on_load_checkpoint).
        self._apply(pl_module, pl_module.stage)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.frozen_epochs and pl_module.stage == "frozen":
            self._apply(pl_module, "unfrozen")
            trainer.strategy.setup_optimizers(trainer)  # fresh optimizer + one-cycle for this stage

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.stage == "frozen":
            frozen_batchnorm_to_eval(
                self._body(pl_module)
            )  # model.train() anywhere (e.g. the LR finder) must not undo it
