"""Experiment trackers (MLflow, Weights & Biases) beside the CSV and TensorBoard loggers.

The trackers are optional extras: `require_trackers` turns a missing one into one line naming the
extra to install, before anything is built. `log_run_files` sends what a run leaves behind (the
report PNGs, metrics.json, the best checkpoint) to each tracker once they exist, after the report.
"""

from __future__ import annotations

import importlib
import logging
import math
from pathlib import Path

from omegaconf import DictConfig

from kmnist.errors import ConfigError
from kmnist.utils.locks import exclusive_lock

log = logging.getLogger(__name__)

# Logger class -> (module it needs, pyproject extra that installs it).
TRACKERS = {"MLFlowLogger": ("mlflow", "mlflow"), "WandbLogger": ("wandb", "wandb")}
# Run-directory folders that hold loggers' own files, not the report.
NOT_REPORT = {"checkpoints", "csv", "tensorboard", "wandb", "mlruns", ".hydra"}


def require_trackers(loggers: DictConfig | None) -> None:
    """Fail in one line when a configured tracker's package is missing; create a new local SQLite store."""
    for key, item in (loggers or {}).items():
        target = item.get("_target_", "") if isinstance(item, DictConfig) else ""
        needs = TRACKERS.get(target.rsplit(".", 1)[-1])
        if needs is None:
            continue
        module, extra = needs
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"logger.{key}: {module} is not installed; "
                f'it is an optional extra: pip install -e ".[{extra}]"'
            ) from None
        if module == "mlflow":
            create_mlflow_store(item)


def create_mlflow_store(item: DictConfig) -> None:
    """Create a local SQLite store and its experiment, once, under a lock beside the store.

    The jobs of a parallel sweep into a new store each ran its schema migrations at once and one
    crashed ("Online migration expected to match one row ... alembic_version"): the first job in
    creates it, the others wait, then find it made."""
    uri = str(item.get("tracking_uri") or "")
    if not uri.startswith("sqlite:///"):  # a server or another store type: MLflow's own business
        return
    db = Path(uri[len("sqlite:///") :])
    with exclusive_lock(
        db.with_name(f"{db.name}.lock")
    ):  # also makes the folder (SQLite makes only the file)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)  # creates the schema in a new store
        name = item.get("experiment_name") or "lightning_logs"  # MLFlowLogger's default
        if (
            client.get_experiment_by_name(name) is None
        ):  # as MLFlowLogger would create it, with its artifact location
            client.create_experiment(name, artifact_location=item.get("artifact_location"))


def run_files(output_dir: Path, metrics: dict) -> list[tuple[Path, str]]:
    """(file, folder in the tracker) for the report PNGs, metrics.json and the best checkpoint."""
    files = []
    for png in sorted(output_dir.rglob("*.png")):
        folder = png.parent.relative_to(output_dir)
        if not NOT_REPORT & set(folder.parts):
            files.append((png, "/".join(("report", *folder.parts))))
    if (output_dir / "metrics.json").is_file():
        files.append((output_dir / "metrics.json", ""))
    if metrics.get("best_ckpt") and Path(metrics["best_ckpt"]).is_file():
        files.append((Path(metrics["best_ckpt"]), "checkpoints"))
    return files


def log_run_files(loggers: list, output_dir: Path, metrics: dict) -> None:
    """Each tracker gets the run's files (and W&B its final metrics as the run summary)."""
    for logger in loggers:
        kind = type(logger).__name__
        if kind not in TRACKERS:
            continue
        files = run_files(output_dir, metrics)
        if kind == "MLFlowLogger":
            for path, folder in files:
                logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=folder or None)
        else:  # W&B: offline runs keep the files until `wandb sync`
            run = logger.experiment
            run.summary.update(
                {k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)}
            )
            root = output_dir.resolve()
            for path, _ in files:  # as in the run folder: dev/confusion.png beside confusion.png, not over it
                path = path.resolve()
                run.save(
                    str(path), base_path=str(root if path.is_relative_to(root) else path.parent), policy="now"
                )
        log.info("%s: logged %d files of %s", kind, len(files), output_dir)


def finish_trackers(loggers: list) -> None:
    """W&B keeps a run open until wandb.finish(): close it so the next run (or notebook cell) starts
    its own."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger" and getattr(logger, "_experiment", None) is not None:
            logger.experiment.finish()
