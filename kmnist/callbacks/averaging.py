"""What EMA and SWA share: until the average has taken in the weights at least once, it is a copy
of the untrained network, so validation, checkpoints and the end of training keep the current
weights (Lightning's `WeightAveraging` would swap the copy in). An EMA that starts late
(`update_starting_at_step`) or a run shorter than that start otherwise validates, saves and
returns a random network.
"""

from __future__ import annotations

import lightning.pytorch as pl


class AfterFirstAverage:
    """Mix in before a `WeightAveraging` subclass: its swaps run only once the average holds weights."""

    def averaging(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            super().on_validation_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.averaging():
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        # Before the first average the checkpoint holds the current weights; a resume from it starts
        # the average afresh (the base class loads a checkpoint without averaging state that way).
        if self.averaging():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
