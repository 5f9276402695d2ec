"""The Classifier under `speed.cuda_graph=true`: forward + backward replayed as one CUDA graph
(kmnist.engine.cuda_graph). Lightning cannot step an optimiser around a graph it did not build,
so this subclass optimises manually: it steps the optimiser and, as Lightning's automatic loop
would, every scheduler. On the CPU the same loop runs eagerly (tests cover it there)."""

from __future__ import annotations

import logging

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from kmnist.engine.cuda_graph import GraphedTrainStep
from kmnist.engine.module import Classifier
from kmnist.errors import ConfigError

log = logging.getLogger(__name__)


class GraphedClassifier(Classifier):
    def __init__(self, **kwargs):
        super().__init__(**kwargs, cuda_graph=True)
        self.graphed_step: GraphedTrainStep | None = None

    def on_fit_start(self) -> None:
        super().on_fit_start()
        if self.device.type != "cuda":  # said once, so a CPU run's speed is not read as the graph's
            log.warning(
                "speed.cuda_graph=true: no CUDA device here, so each step runs eagerly (the same "
                "updates, without the graph's speed-up)"
            )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
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
        self.step_schedulers("step")
        self._update_metrics(loss, logits, y, self.train_loss, self.train_acc)
        self.log_training_metrics()
        return loss

    def on_train_epoch_end(self) -> None:
        self.step_schedulers("epoch")

    def step_schedulers(self, interval: str) -> None:
        """What Lightning's automatic loop does, for every configured scheduler (ours, or the LR
        finder's while it runs): interval, frequency, and a monitored metric for ReduceLROnPlateau
        (missing: an error if strict)."""
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
                raise ConfigError(
                    f"scheduler.monitor={monitor!r} is not a logged metric; logged: "
                    f"{', '.join(sorted(self.trainer.callback_metrics)) or 'none yet'}"
                )

    def teardown(self, stage: str) -> None:
        # A graph is bound to the parameters' memory: the LR finder's fit ends by moving the
        # module (and the next fit allocates it anew), so never carry a graph from one fit to the next.
        self.graphed_step = None
