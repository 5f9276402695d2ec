"""Training wall time as a logged metric, so a run's curves say when it reached an accuracy."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch


class TrainTimer(pl.Callback):
    """Logs `time/train_seconds` (cumulative wall time spent in training epochs, validation
    excluded) and `time/epoch_seconds` (the last epoch's) at each validation.
    bench/time_to_accuracy.py reads them from metrics.csv; the first epoch's excess over later
    ones is the warm-up (cuDNN autotuning, compilation)."""

    def __init__(self):
        self.total, self.epoch_seconds, self._start = 0.0, 0.0, None

    @staticmethod
    def _now(pl_module) -> float:
        if pl_module.device.type == "cuda":  # GPU work is asynchronous: time what has finished
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = self._now(pl_module)

    def _stop(self, pl_module) -> None:
        if self._start is not None:
            self.epoch_seconds = self._now(pl_module) - self._start
            self.total += self.epoch_seconds
            self._start = None

    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._stop(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._stop(pl_module)  # an epoch without validation

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            # DDP: the job took as long as its slowest rank.
            pl_module.log("time/train_seconds", self.total, sync_dist=True, reduce_fx="max")
            pl_module.log("time/epoch_seconds", self.epoch_seconds, sync_dist=True, reduce_fx="max")

    def state_dict(self) -> dict:
        return {"total": self.total}

    def load_state_dict(self, state_dict: dict) -> None:
        self.total = state_dict.get("total", 0.0)
