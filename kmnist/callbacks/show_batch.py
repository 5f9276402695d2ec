"""`ShowBatch` saves `batch.png` when training starts: augmented samples exactly as the network
receives them, like fastai's `show_batch`."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from kmnist.report.batch import plot_batch


class ShowBatch(pl.Callback):
    def __init__(self, n: int = 36, filename: str = "batch.png"):
        self.n, self.filename = n, filename

    @pl.utilities.rank_zero_only
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        # A private RNG stream: drawing this preview must not change the training run.
        with torch.random.fork_rng(devices=[pl_module.device] if pl_module.device.type == "cuda" else []):
            loader = datamodule.train_dataloader()
            loader.done_fn = None  # the epoch's first batch, also when resumed mid-epoch (past it)
            images, labels = next(iter(loader))
            batch = datamodule.on_after_batch_transfer(
                (images[: self.n].to(pl_module.device), labels[: self.n]), 0
            )
        out = Path(trainer.default_root_dir) / self.filename
        plot_batch(
            batch[0].float().cpu(),
            batch[1].cpu(),
            out,
            n=self.n,
            title=f"training batch as the network sees it ({tuple(batch[0].shape[1:])})",
        )
