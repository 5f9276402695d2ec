"""Stochastic weight averaging (Izmailov et al., 2018): the equal average of the weights at the end
of every epoch from `start` on. Validation, checkpoints and the final weights are the average's.

Built on Lightning's `WeightAveraging` (as `EMA` is) rather than its `StochasticWeightAveraging`,
which swaps the run's LR schedule for its own and appends a BatchNorm-refresh epoch: here the
run's schedule stays (one-cycle's anneal is the averaged tail) and BatchNorm statistics are
averaged with the weights. Two choices differ from the base class, each for a reason:
- the average takes each epoch's weights after its last training batch, before that epoch's
  validation, so the validated and checkpointed model (last.ckpt) is the average so far,
  including this epoch (the base's epoch-end hook runs after validation and checkpointing);
- until the first epoch is averaged, validation and checkpoints see the current weights, not the
  copy of the untrained network the base class would swap in (`AfterFirstAverage`, as EMA).
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import WeightAveraging

from kmnist.callbacks.averaging import AfterFirstAverage
from kmnist.errors import ConfigError


class SWA(AfterFirstAverage, WeightAveraging):
    """`start`: the first averaged epoch, as a fraction of `max_epochs` (0.75: the last quarter) or an
    epoch index."""

    def __init__(self, start: float | int = 0.75, **kwargs):
        super().__init__(**kwargs)  # no avg_fn: AveragedModel's default is the equal (SWA) average
        self.start = start
        self.start_epoch = 0
        self._latest_update_epoch = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        epochs = trainer.max_epochs
        if isinstance(self.start, bool) or not isinstance(self.start, (int, float)) or self.start < 0:
            raise ConfigError(
                f"callbacks.swa.start={self.start!r}: "
                "expected a fraction of the epochs in [0, 1) or an epoch index"
            )
        self.start_epoch = int(self.start) if isinstance(self.start, int) else int(self.start * epochs)
        if epochs is not None and epochs > 0 and self.start_epoch >= epochs:
            raise ConfigError(
                f"callbacks.swa.start={self.start}: epoch {self.start_epoch} is past the last one "
                f"(trainer.max_epochs={epochs}); nothing would be averaged"
            )

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return False  # updates happen in on_train_batch_end, at each epoch's last batch

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        epoch = trainer.current_epoch
        last_batch = batch_idx + 1 >= trainer.num_training_batches
        if last_batch and epoch >= self.start_epoch and epoch > self._latest_update_epoch:
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch

    def state_dict(self) -> dict:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)
