"""The predict job: checkpoint(s) + a CSV -> a Kaggle submission (and a score if labelled)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, ListConfig

from kmnist.data.io import read_digits
from kmnist.data.pseudo_labels import write_pseudo_labels
from kmnist.data.tta import resolve_views, tta_name
from kmnist.engine.adapt import ADAPT_MODES, adapt_models
from kmnist.engine.inference import (
    inference_bf16,
    load_checkpoint,
    predict_proba,
    refuse_overwrite,
    resolve_device,
    write_submission,
)
from kmnist.engine.label_shift import PRIOR_MODES, apply_prior
from kmnist.errors import ConfigError
from kmnist.utils.atomic import atomic_write, write_json

log = logging.getLogger(__name__)


def save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would add .npy to the temporary name
        np.save(fh, array, allow_pickle=False)


def predict(cfg: DictConfig) -> dict:
    threshold = cfg.get("pseudo_label_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0)
    ):
        raise ConfigError(f"pseudo_label_threshold={threshold}: expected a probability in [0, 1], e.g. 0.99")
    resolve_views(cfg.tta)  # a bad set name fails before any checkpoint is read
    for key, choices in (("adapt", ADAPT_MODES), ("prior", PRIOR_MODES)):
        if cfg.get(key, "none") not in choices:
            raise ConfigError(f"{key}={cfg.get(key)}: expected one of {', '.join(choices)}")
    device = resolve_device(cfg.accelerator)
    bf16 = inference_bf16(cfg.precision, device)  # as does a bad precision
    output = Path(cfg.output) if cfg.output else Path(cfg.paths.output_dir) / "submission.csv"
    if output.is_dir():
        raise ConfigError(
            f"output={cfg.output}: is a folder; name the submission file, "
            f"e.g. output={output / 'submission.csv'}"
        )
    overwrite = cfg.overwrite or not cfg.output
    # A labelled input's report: the run's own folder, or beside an output= file in a folder named after it,
    # so two predictions into one folder do not replace each other's plots.
    report_dir = output.parent if not cfg.output else output.with_name(output.stem + "_report")
    pseudo_labels = output.with_name("pseudo_labels.csv.gz") if threshold is not None else None
    metrics_file = output.with_name(output.stem + "_metrics.json")
    # The ensemble's mean probabilities, before any prior: prior= can be applied again without predicting.
    probs_file = output.with_name(output.stem + "_probs.npy")
    if (
        pseudo_labels is not None and output.resolve() == pseudo_labels.resolve()
    ):  # one file would replace the other
        raise ConfigError(
            f"output={cfg.output}: the pseudo-label file has this name beside it; "
            "name the submission otherwise"
        )
    for path in (output, metrics_file, probs_file, pseudo_labels, report_dir if cfg.output else None):
        if path is not None:
            refuse_overwrite(path, overwrite)  # as early: not after minutes of ensemble and TTA inference
    paths = list(cfg.ckpt) if isinstance(cfg.ckpt, (list, ListConfig)) else [cfg.ckpt]
    if not paths:
        raise ConfigError("ckpt=[]: no checkpoint given; pass ckpt=PATH or ckpt=[a.ckpt,b.ckpt]")
    if isinstance(cfg.batch_size, bool) or not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise ConfigError(
            f"batch_size={cfg.batch_size}: expected a positive number of images per batch, e.g. 256"
        )
    models = [load_checkpoint(p) for p in paths]
    table = read_digits(cfg.input, cache_dir=cfg.get("cache_dir"))
    ids = table.ids if table.ids is not None else np.arange(len(table))
    adapt, prior = cfg.get("adapt", "none"), cfg.get("prior", "none")
    models = adapt_models(models, table.images, adapt, device, seed=cfg.get("adapt_seed", 0))

    probs = predict_proba(
        models,
        table.images,
        batch_size=cfg.batch_size,
        device=device,
        tta=cfg.tta,
        progress=cfg.progress,
        precision=cfg.precision,
    )
    atomic_write(probs_file, lambda tmp: save_array(tmp, probs.astype(np.float32)))
    decided = apply_prior(probs, prior, temperature=cfg.get("temperature"))  # = probs under prior=none
    labels = decided.argmax(axis=1)

    write_submission(ids, labels, output, overwrite=overwrite)
    result = {
        "input": str(cfg.input),
        "output": str(output.resolve()),
        "rows": len(labels),
        "checkpoints": [str(p) for p in paths],
        "tta": tta_name(cfg.tta),
        "precision": "bf16-mixed" if bf16 else "32-true",
        "adapt": adapt,
        "prior": prior,
        "probs": str(probs_file.resolve()),
        "class_totals": np.bincount(labels, minlength=probs.shape[1]).tolist(),
    }
    if table.labels is not None:
        from kmnist.report.evaluation import evaluate  # matplotlib only for labelled inputs

        result["accuracy"] = float((labels == table.labels).mean())
        result.update(evaluate(decided, table.labels, table.images, report_dir, title=Path(cfg.input).name))
        log.info(
            "accuracy on %s: %.4f (%d rows); report in %s",
            cfg.input,
            result["accuracy"],
            len(labels),
            report_dir,
        )
    if pseudo_labels is not None:
        result.update(write_pseudo_labels(table, probs, float(threshold), pseudo_labels))
    write_json(metrics_file, result)
    log.info("wrote %d predictions to %s", len(labels), output.resolve())
    return result
