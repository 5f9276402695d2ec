"""SIGTERM (e.g. SLURM preemption) and SIGINT (Ctrl+C) save a checkpoint before the run exits.

Lightning turns SIGTERM into a SIGTERMException at the next batch boundary and Ctrl+C into a
graceful KeyboardInterrupt; both reach `on_exception`, where this callback writes last.ckpt
(atomically, as every Lightning checkpoint) so `ckpt_path=RUN_DIR` can resume the run.

Under DDP the ranks must stop at the same batch, or the checkpoint's collective save meets a
rank that is still training. Lightning 2.6's own SIGTERM handler runs a broadcast inside the
signal handler, wherever the signal interrupts each rank, and the job hung in 3 of 4 tries here.
So under DDP the handler only notes the signal, and at the end of every training batch the ranks
agree (one all-reduce of a flag) whether any of them got it: a SIGTERM to one rank (`kill PID`)
or to all (scancel) stops every rank after the same batch.
"""

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
        self._sigterm = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._sigterm = False
        if trainer.world_size > 1:
            # Lightning registers its handler after setup, looking this bound method up then.
            trainer._signal_connector._sigterm_notifier_fn = self._note_sigterm

    def _note_sigterm(self, signum, frame) -> None:
        log.info("rank %d received SIGTERM: stopping after this batch", pl.utilities.rank_zero_only.rank)
        self._sigterm = True

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(self._sigterm, all=False):
            trainer._signal_connector.received_sigterm = (
                True  # Lightning raises SIGTERMException on every rank now
            )

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)) or trainer.sanity_checking:
            return
        checkpoint = trainer.checkpoint_callback
        folder = (
            Path(checkpoint.dirpath)
            if checkpoint is not None and checkpoint.dirpath
            else Path(trainer.default_root_dir) / "checkpoints"
        )
        self.saved = folder / self.filename
        trainer.save_checkpoint(self.saved)
        log.warning(
            "interrupted at epoch %d, step %d: saved %s",
            trainer.current_epoch,
            trainer.global_step,
            self.saved,
        )
