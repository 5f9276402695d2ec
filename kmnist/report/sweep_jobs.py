"""A Hydra multirun's job folders (SWEEP_DIR/0, /1, ...) read into the leaderboard's rows: each
job's overrides, its metric, epochs and seconds from metrics.json, and why it has no metric (failed,
still running, or finished measuring something else)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import yaml

from kmnist.errors import FAILED_JOB_FILE
from kmnist.utils.metrics import lower_is_better

OK, MISSING = "ok", "missing metrics"


def _status(job: Path, value: float, metrics: dict, metric: str) -> str:
    if math.isfinite(value):
        return OK
    if "epochs" in metrics:  # finished, but this job's run measured something else (e.g. dev/* alone)
        return f"finished without {metric}"
    try:
        return "failed: " + (job / FAILED_JOB_FILE).read_text().strip()
    except OSError:
        return MISSING


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )


def _read_metrics(job: Path) -> dict:
    try:
        metrics = json.loads((job / "metrics.json").read_text())
    except (OSError, ValueError):  # not written (failed or still running) or cut short
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _read_overrides(job: Path) -> str:
    try:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return ""
    return " ".join(str(o) for o in overrides or [])


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def recorded_metric(sweep_dir: str | os.PathLike) -> str | None:
    """The metric the finished jobs say their sweep ranks by (metrics.json's `leaderboard_metric`, as
    each run resolved it: a run validating on data.val_file alone ranks by dev/acc), when they agree;
    else the sweep's composed `leaderboard_metric` (multirun.yaml); else None."""
    recorded = {
        m["leaderboard_metric"]
        for job in job_dirs(Path(sweep_dir))
        if "leaderboard_metric" in (m := _read_metrics(job))
    }
    if len(recorded) == 1:
        return recorded.pop()
    try:
        composed = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text()).get("leaderboard_metric")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return composed if isinstance(composed, str) and "${" not in composed else None


def gather(
    sweep_dir: str | os.PathLike, metric: str = "val/acc", maximize: bool | None = None
) -> pd.DataFrame:
    """One row per job folder: job, overrides, <metric>, epochs, train_seconds, best_ckpt, model, status,
    best first (NaN last). `maximize` defaults to False for losses and errors, True otherwise."""
    maximize = not lower_is_better(metric) if maximize is None else maximize
    rows = []
    for job in job_dirs(Path(sweep_dir)):
        metrics = _read_metrics(job)
        value = _number(metrics.get(metric))
        rows.append(
            {
                "job": int(job.name),
                "overrides": _read_overrides(job),
                metric: value,
                "epochs": _number(metrics.get("epochs")),
                "train_seconds": _number(metrics.get("train_seconds")),
                "best_ckpt": metrics.get("best_ckpt") or "",
                "model": metrics.get("model") or "",
                "status": _status(job, value, metrics, metric),
            }
        )
    columns = ["job", "overrides", metric, "epochs", "train_seconds", "best_ckpt", "model", "status"]
    board = pd.DataFrame(rows, columns=columns)
    # Whole epochs; <NA> for a failed job (float first: an empty board is object-typed).
    board["epochs"] = board["epochs"].astype(float).round().astype("Int64")
    # Stable sort on (metric, job) so ties keep job order.
    return board.sort_values(
        [metric, "job"], ascending=[not maximize, True], na_position="last", kind="stable"
    ).reset_index(drop=True)


def find_sweep(path: str | os.PathLike) -> Path:
    """`path` itself when it holds job folders, else the newest sweep below it (up to two levels,
    e.g. outputs/multirun/DATE or outputs/multirun): Hydra's DATE/TIME names sort by time."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no such folder: {path}")
    if job_dirs(path):
        return path
    candidates = [d for pattern in ("*", "*/*") for d in path.glob(pattern) if d.is_dir() and job_dirs(d)]
    if not candidates:
        raise ValueError(f"no sweep job folders (0, 1, ...) in {path} or its subfolders")
    # Newest by when it was written, not by name: `multirun/optuna/cnn` would sort after every DATE folder.
    return max(candidates, key=lambda d: (_written_at(d), d.relative_to(path).parts))


def _written_at(sweep_dir: Path) -> float:
    return max(
        (p.stat().st_mtime for p in (sweep_dir / "multirun.yaml", *job_dirs(sweep_dir)) if p.exists()),
        default=0.0,
    )
