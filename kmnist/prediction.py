"""The predict job: checkpoint(s) + a CSV -> a Kaggle submission (and a score if labelled)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig

from kmnist.atomic import write_json
from kmnist.data.io import read_digits
from kmnist.inference import load_checkpoint, predict_proba, resolve_device, write_submission

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> dict:
    paths = list(cfg.ckpt) if isinstance(cfg.ckpt, (list, ListConfig)) else [cfg.ckpt]
    models = [load_checkpoint(p) for p in paths]
    table = read_digits(cfg.input, cache_dir=cfg.get("cache_dir"))
    ids = table.ids if table.ids is not None else np.arange(len(table))

    device = resolve_device(cfg.accelerator)
    probs = predict_proba(models, table.images, batch_size=cfg.batch_size, device=device, tta=cfg.tta, progress=cfg.progress)
    labels = probs.argmax(axis=1)

    output = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "submission.csv"
    write_submission(ids, labels, output, overwrite=cfg.overwrite or not cfg.output)
    result = {"input": str(cfg.input), "output": str(output.resolve()), "rows": len(labels), "checkpoints": [str(p) for p in paths], "tta": bool(cfg.tta)}
    if table.labels is not None:
        from kmnist.report.evaluation import evaluate  # matplotlib only for labelled inputs

        result["accuracy"] = float((labels == table.labels).mean())
        result.update(evaluate(probs, table.labels, table.images, output.parent, title=Path(cfg.input).name))
        log.info("accuracy on %s: %.4f (%d rows); report in %s", cfg.input, result["accuracy"], len(labels), output.parent)
    write_json(output.with_name(output.stem + "_metrics.json"), result)
    log.info("wrote %d predictions to %s", len(labels), output.resolve())
    return result
