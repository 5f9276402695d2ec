"""Reports of one training run, written into its run directory.

`write_run_report` runs after fitting: `curves.png` from the run's own logged metrics, and the
validation evaluation (confusion matrices, per-class scores, the most confidently wrong images) of
the best checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.loggers import CSVLogger

from kmnist.data.batches import TensorBatches
from kmnist.models.probabilities import probabilities
from kmnist.report.curves import plot_curves
from kmnist.report.evaluation import evaluate

log = logging.getLogger(__name__)


def csv_metrics_file(trainer: pl.Trainer) -> Path | None:
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            path = Path(logger.log_dir) / "metrics.csv"
            return path if path.is_file() else None
    return None


@torch.inference_mode()
def validation_outputs(
    module: pl.LightningModule,
    datamodule,
    tensors: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax, labels and raw images of a whole validation set (default: the held-out split), in order."""
    tensors = datamodule.val_set if tensors is None else tensors
    was_training = module.training
    module.eval()
    probs = []
    # Every row in this one process: under DDP, val_dataloader() would give only this rank's share.
    for images, labels in TensorBatches(tensors, datamodule.eval_batch_size):
        x, _ = datamodule.on_after_batch_transfer((images.to(module.device), labels), 0)
        probs.append(probabilities(module, x).cpu())
    module.train(was_training)
    images, labels = tensors
    return torch.cat(probs).numpy(), labels.cpu().numpy(), images[:, 0].cpu().numpy()


def validated_module(trainer: pl.Trainer, module: pl.LightningModule) -> pl.LightningModule:
    """The weights validation scores. Under a weight-averaging callback (EMA) that is its average
    (the checkpoint's `state_dict`, which predict.py loads), not the module's raw weights: after
    `trainer.validate(ckpt_path=best)` Lightning leaves the raw weights in the module and the
    average in the callback (`_average_model`: Lightning offers no public accessor). An average that
    never took in the weights (an EMA starting after the run's last step) is not what was scored."""
    for callback in trainer.callbacks:
        average = getattr(callback, "_average_model", None) if isinstance(callback, WeightAveraging) else None
        if average is not None and int(average.n_averaged) > 0:
            return average.module
    return module


# Where each validation set's evaluation goes, and what its plots are titled.
REPORT_PLACES = {"val": ("", "validation: held-out writers"), "dev": ("dev", "dev: data.val_file")}


def write_run_report(
    trainer: pl.Trainer, module: pl.LightningModule, datamodule, output_dir: Path, title: str = ""
) -> dict:
    """Curves always; an evaluation per validation set: the held-out writers into the run
    directory, data.val_file into its `dev/` folder. Returns `val/<score>` and `dev/<score>` metrics."""
    metrics_csv = csv_metrics_file(trainer)
    if metrics_csv is not None:
        plot_curves(metrics_csv, output_dir / "curves.png", title=title)
    scored = validated_module(trainer, module)
    metrics = {}
    for name, tensors in datamodule.validation_sets().items():
        if tensors is None or len(tensors[0]) == 0:
            continue
        folder, what = REPORT_PLACES[name]
        with (
            trainer.precision_plugin.val_step_context()
        ):  # validation's precision (bf16 autocast under bf16-mixed)
            probs, labels, images = validation_outputs(scored, datamodule, tensors)
        scores = evaluate(
            probs, labels, images, output_dir / folder, title=f"{title} ({what})" if title else what
        )
        metrics.update({f"{name}/{score}": value for score, value in scores.items()})
    return metrics
