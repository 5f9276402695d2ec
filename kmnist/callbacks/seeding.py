"""Per-epoch reseeding, so a run resumed from an epoch's checkpoint draws the same random numbers
(augmentation, dropout) as an uninterrupted run: each epoch's stream depends on (seed, epoch)
alone, not on how many numbers earlier epochs happened to draw in this process."""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch


class EpochSeed(pl.Callback):
    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch_seed = (self.seed * 1_000_003 + trainer.current_epoch * 7919 + trainer.global_rank) % 2**32
        random.seed(epoch_seed)
        np.random.seed(epoch_seed)
        torch.manual_seed(epoch_seed)  # also seeds every CUDA device
