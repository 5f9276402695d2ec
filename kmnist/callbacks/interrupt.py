"""SIGTERM (e.g. SLURM preemption) and SIGINT (Ctrl+C) save a checkpoint before the run exits.

Lightning turns SIGTERM into a SIGTERMException at the next batch boundary and Ctrl+C into a
graceful KeyboardInterrupt; both reach `on_exception`, where this callback writes last.ckpt
(atomically, as every Lightning checkpoint) so `ckpt_path=RUN_DIR` can resume the run."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(pl.Callback):
    def __init__(self, filename: str = "last.ckpt"):
        self.filename = filename
        self.saved: Path | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)) or trainer.sanity_checking:
            return
        checkpoint = trainer.checkpoint_callback
        folder = Path(checkpoint.dirpath) if checkpoint is not None and checkpoint.dirpath else Path(trainer.default_root_dir) / "checkpoints"
        self.saved = folder / self.filename
        trainer.save_checkpoint(self.saved)
        log.warning("interrupted at epoch %d, step %d: saved %s", trainer.current_epoch, trainer.global_step, self.saved)
