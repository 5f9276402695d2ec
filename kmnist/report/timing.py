"""Training wall time as a logged metric, so a run's curves say when it reached an accuracy."""

from __future__ import annotations

import time

import lightning.pytorch as pl


class TrainTimer(pl.Callback):
    """Logs `time/train_seconds`: cumulative wall time spent in training epochs (validation
    excluded), at each validation. bench/time_to_accuracy.py reads it from metrics.csv."""

    def __init__(self):
        self.total, self._start = 0.0, None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._start is not None and not trainer.sanity_checking:
            self.total += time.perf_counter() - self._start
            self._start = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is not None:  # an epoch without validation
            self.total += time.perf_counter() - self._start
            self._start = None

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            # DDP: the job took as long as its slowest rank.
            pl_module.log("time/train_seconds", self.total, sync_dist=True, reduce_fx="max")

    def state_dict(self) -> dict:
        return {"total": self.total}

    def load_state_dict(self, state_dict: dict) -> None:
        self.total = state_dict.get("total", 0.0)
