"""The one LightningModule: loss, metrics and optimiser wiring around any network.

The network is a plain nn.Module from `kmnist.models`; this class never defines layers.
Hyperparameters saved into checkpoints are plain Python containers (the network, optimiser and
scheduler partials are ignored), so checkpoints load with `torch.load(weights_only=True)`, and
`config` holds the run's whole resolved Hydra config so a checkpoint can rebuild its network.
"""

from __future__ import annotations

from functools import partial

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from kmnist import NUM_CLASSES
from kmnist.callbacks.finetune import layer_groups
from kmnist.engine.distill import TeacherEnsemble
from kmnist.engine.optimizers import build_optimizers, plain_partial
from kmnist.errors import ConfigError
from kmnist.models.probabilities import probabilities

VALIDATION_SETS = ("val", "dev")


class Classifier(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: partial,
        scheduler: partial | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str | None = None,
        label_smoothing: float = 0.0,
        finetune: dict | None = None,
        config: dict | None = None,
        cuda_graph: bool = False,
        teacher: TeacherEnsemble | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "teacher"])
        self.net = net
        self.optimizer_factory, self.scheduler_factory = plain_partial(optimizer), plain_partial(scheduler)
        # Takes class indices or, under distillation, class probabilities (soft targets).
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.teacher = teacher
        # Micro-averaged accuracy is Kaggle's metric; torchmetrics' Multiclass* default to macro.
        # No per-step argument or NaN checks: each one reads a GPU value back (a sync every step);
        # a NaN loss still shows as nan in the logged means.
        self.train_acc = MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro", validate_args=False)
        self.train_loss = MeanMetric(nan_strategy="disable")
        # One pair per validation set, by the prefix its metrics are logged under: `val` (held-out
        # training writers) and `dev` (data.val_file, e.g. the test cohort's labelled writers).
        self.eval_acc = nn.ModuleDict(
            {
                name: MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro", validate_args=False)
                for name in VALIDATION_SETS
            }
        )
        self.eval_loss = nn.ModuleDict({name: MeanMetric(nan_strategy="disable") for name in VALIDATION_SETS})
        # fastai-style stages (kmnist.callbacks.finetune.FineTuneStages switches "frozen" -> "unfrozen").
        # Set here, and restored from a checkpoint, because the optimiser's groups follow it and
        # Lightning builds the optimiser before on_fit_start and before it restores the epoch count.
        self.stage: str | None = (
            ("frozen" if finetune.get("frozen_epochs", 1) > 0 else "unfrozen") if finetune else None
        )
        if finetune:  # a network without a body and a head is refused here, not inside trainer.fit
            layer_groups(net, ((config or {}).get("model") or {}).get("name"))
        # Recorded in checkpoints, so a resume can refuse a switch; GraphedClassifier passes True.
        self.automatic_optimization = not cuda_graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(
        self,
        batch,
        loss_metric: MeanMetric,
        acc_metric: MulticlassAccuracy,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x, y = batch[:2]
        logits = self(x)
        loss = self.criterion(logits, y if target is None else target)
        self._update_metrics(loss.detach(), logits.detach(), y, loss_metric, acc_metric)
        return loss

    def training_target(
        self, x: torch.Tensor, y: torch.Tensor, mixed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the loss compares the logits with: the labels, or the soft targets of MixUp /
        CutMix (`mixed`, from the data module); under distillation, that mixed with the teacher
        ensemble's probabilities on this very (augmented) batch."""
        target = y if mixed is None else mixed
        return target if self.teacher is None else self.teacher.soft_targets(x, target)

    @staticmethod
    def _update_metrics(loss, logits, y, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy) -> None:
        # The weight as a device tensor: a Python int would be copied to the GPU every step.
        loss_metric.update(loss, weight=loss.new_full((), float(len(y))))
        acc_metric.update(logits, y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, self.train_loss, self.train_acc, target=self.training_target(*batch))
        self.log_training_metrics()
        return loss

    def log_training_metrics(self) -> None:
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)

    def validation_set_names(self) -> list[str]:
        """The data module's validation sets in dataloader order (`val` alone without one)."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        return list(getattr(datamodule, "val_set_names", None) or ["val"])

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.validation_set_names()[dataloader_idx]
        self._step(batch, self.eval_loss[name], self.eval_acc[name])
        # add_dataloader_idx=False: the prefix already says which set (val/acc, dev/acc).
        self.log(
            f"{name}/loss",
            self.eval_loss[name],
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            add_dataloader_idx=False,
        )
        self.log(
            f"{name}/acc",
            self.eval_acc[name],
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            add_dataloader_idx=False,
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.stage is not None:
            checkpoint["finetune_stage"] = self.stage

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.stage is not None:  # a run resumed in its unfrozen stage rebuilds that stage's optimiser
            self.stage = checkpoint.get("finetune_stage", self.stage)
        # Lightning counts steps in different loops under automatic and manual optimisation: a run
        # resumed across the switch would restart its step count (and stall the EMA's updates).
        if self._trainer is None or self.trainer.state.fn != "fit":
            return
        saved = bool(checkpoint.get("hyper_parameters", {}).get("cuda_graph", False))
        if saved != (not self.automatic_optimization):
            raise ConfigError(
                f"this checkpoint was trained with speed.cuda_graph={str(saved).lower()}: "
                f"resume it with the same value"
            )

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return probabilities(self, batch[0])

    def configure_optimizers(self):
        return build_optimizers(self)
