"""The one LightningModule: loss, metrics and optimiser wiring around any network.

The network is a plain nn.Module from `kmnist.models`; this class never defines layers.
Hyperparameters saved into checkpoints are plain Python containers (the network, optimiser and
scheduler partials are ignored), so checkpoints load with `torch.load(weights_only=True)`, and
`config` holds the run's whole resolved Hydra config so a checkpoint can rebuild its network.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from kmnist.cuda_graph import GraphedTrainStep
from kmnist.distill import TeacherEnsemble
from kmnist.errors import ConfigError

NUM_CLASSES = 10
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
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
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
        self.eval_acc = nn.ModuleDict({name: MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro", validate_args=False)
                                       for name in VALIDATION_SETS})
        self.eval_loss = nn.ModuleDict({name: MeanMetric(nan_strategy="disable") for name in VALIDATION_SETS})
        # fastai-style stages (kmnist.finetune.FineTuneStages switches "frozen" -> "unfrozen").
        self.stage: str | None = "frozen" if finetune else None
        # cuda_graph: forward + backward replayed as one CUDA graph (kmnist.cuda_graph), so the
        # optimiser and scheduler are stepped here (manual optimisation) instead of by Lightning.
        if cuda_graph and finetune:
            raise ConfigError("model.cuda_graph=true does not combine with finetune (its stages rebuild the optimiser)")
        self.automatic_optimization = not cuda_graph
        self.graphed_step: GraphedTrainStep | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch, loss_metric: MeanMetric, acc_metric: MulticlassAccuracy, target: torch.Tensor | None = None) -> torch.Tensor:
        x, y = batch[:2]
        logits = self(x)
        loss = self.criterion(logits, y if target is None else target)
        self._update_metrics(loss.detach(), logits.detach(), y, loss_metric, acc_metric)
        return loss

    def training_target(self, x: torch.Tensor, y: torch.Tensor, mixed: torch.Tensor | None = None) -> torch.Tensor:
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
        if self.automatic_optimization:
            loss = self._step(batch, self.train_loss, self.train_acc, target=self.training_target(*batch))
        else:
            loss = self._manual_step(batch)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_set_names(self) -> list[str]:
        """The data module's validation sets in dataloader order (`val` alone without one)."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        return list(getattr(datamodule, "val_set_names", None) or ["val"])

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.validation_set_names()[dataloader_idx]
        self._step(batch, self.eval_loss[name], self.eval_acc[name])
        # add_dataloader_idx=False: the prefix already says which set (val/acc, dev/acc).
        self.log(f"{name}/loss", self.eval_loss[name], on_step=False, on_epoch=True, prog_bar=True, add_dataloader_idx=False)
        self.log(f"{name}/acc", self.eval_acc[name], on_step=False, on_epoch=True, prog_bar=True, add_dataloader_idx=False)

    def _manual_step(self, batch) -> torch.Tensor:
        """One optimiser step with forward + backward as a CUDA graph on a GPU (eager elsewhere)."""
        x, y = batch[:2]
        target = self.training_target(*batch)  # outside the graph: the teacher runs eagerly
        optimizer = self.optimizers()
        if x.is_cuda:
            if self.graphed_step is None:
                self.graphed_step = GraphedTrainStep(self.net, self.criterion)
            loss, logits = self.graphed_step(x, target)
        else:
            optimizer.zero_grad()
            logits = self(x)
            loss = self.criterion(logits, target)
            self.manual_backward(loss)
            loss, logits = loss.detach(), logits.detach()
        optimizer.step()
        self._step_schedulers("step")
        self._update_metrics(loss, logits, y, self.train_loss, self.train_acc)
        return loss

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization:
            self._step_schedulers("epoch")

    def _step_schedulers(self, interval: str) -> None:
        """Under manual optimisation Lightning steps no scheduler: do what its automatic loop does,
        for every configured scheduler (ours, or the LR finder's while it runs): interval,
        frequency, and a monitored metric for ReduceLROnPlateau (missing: an error if strict)."""
        count = self.trainer.global_step if interval == "step" else self.current_epoch + 1
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval or count % config.frequency:
                continue
            if not isinstance(config.scheduler, ReduceLROnPlateau):
                config.scheduler.step()
                continue
            # Lightning drops `monitor` from scheduler configs under manual optimisation: ours is in hparams.
            monitor = config.monitor or self.hparams.scheduler_monitor
            value = self.trainer.callback_metrics.get(monitor) if monitor else None
            if value is not None:
                config.scheduler.step(value)
            elif config.strict:
                raise ConfigError(f"scheduler.monitor={monitor!r} is not a logged metric; logged: "
                                  f"{', '.join(sorted(self.trainer.callback_metrics)) or 'none yet'}")

    def teardown(self, stage: str) -> None:
        # A graph is bound to the parameters' memory: the LR finder's fit ends by moving the
        # module (and the next fit allocates it anew), so never carry a graph from one fit to the next.
        self.graphed_step = None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning counts steps in different loops under automatic and manual optimisation: a run
        # resumed across the switch would restart its step count (and stall the EMA's updates).
        if self._trainer is None or self.trainer.state.fn != "fit":
            return
        saved = bool(checkpoint.get("hyper_parameters", {}).get("cuda_graph", False))
        if saved != (not self.automatic_optimization):
            raise ConfigError(f"this checkpoint was trained with model.cuda_graph={str(saved).lower()}: "
                              f"resume it with the same value")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return torch.softmax(self(batch[0]).float(), dim=-1)

    # ------------------------------------------------------------ optimisers

    def param_groups(self) -> list[dict[str, Any]] | Any:
        """Parameters for the optimiser; a network may define `param_groups()` (discriminative LRs)."""
        groups = getattr(self.net, "param_groups", None)
        return groups() if callable(groups) else self.parameters()

    def _schedule_length(self, factory: partial) -> dict[str, int]:
        """Fill in a scheduler's length from the trainer when its config leaves it out."""
        params = inspect.signature(factory.func).parameters
        steps = self.trainer.estimated_stepping_batches
        length = steps if self.hparams.scheduler_interval == "step" else self.trainer.max_epochs
        fill = {}
        if "total_steps" in params and factory.keywords.get("total_steps") is None and factory.keywords.get("epochs") is None:
            from kmnist.finetune import one_cycle_steps

            fill["total_steps"] = one_cycle_steps(length, factory.keywords.get("pct_start", 0.3))
        if "T_max" in params and factory.keywords.get("T_max") is None:
            fill["T_max"] = int(length)
        return fill

    def configure_optimizers(self):
        if self.hparams.finetune:
            return self._finetune_optimizers()
        optimizer = self.optimizer_factory(params=self.param_groups())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer, **self._schedule_length(self.scheduler_factory))
        config = {"scheduler": scheduler, "interval": self.hparams.scheduler_interval}
        if self.hparams.scheduler_monitor:
            config["monitor"] = self.hparams.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _finetune_optimizers(self):
        """One optimizer + one-cycle schedule per fine-tuning stage, sized to that stage's steps."""
        from kmnist.finetune import one_cycle, stage_optimizer

        ft = self.hparams.finetune
        steps_per_epoch = self.trainer.estimated_stepping_batches / max(self.trainer.max_epochs, 1)
        epochs = ft["frozen_epochs"] if self.stage == "frozen" else ft["unfrozen_epochs"]
        optimizer, lrs = stage_optimizer(self.net, self.optimizer_factory, self.stage or "unfrozen",
                                         head_lr=self.optimizer_factory.keywords.get("lr", 1e-3), lr_min=ft["lr_min"], lr_max=ft["lr_max"])
        scheduler = one_cycle(optimizer, lrs, total_steps=int(round(steps_per_epoch * epochs)), pct_start=ft.get("pct_start", 0.25))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
