"""Continuing a pipeline in its own folder (`resume=DIR`): a run that finished is reused, one that
was cut off resumes from its `last.ckpt`, a folder made with another config is refused, and what
was predicted or pseudo-labelled already is read back.

A 2-core CPU pipeline takes hours, longer than a job's time limit or a preemptible job may allow;
without this, a cut-off pipeline had to train every member again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kmnist.errors import CheckpointError, ConfigError
from kmnist.utils.atomic import atomic_write, write_json
from kmnist.utils.hashing import file_sha256
from kmnist.utils.shown import shown

log = logging.getLogger(__name__)

# Keys that may differ between the first command and its resumption: a training run's checkpoint
# to resume from, and the pipeline's options that decide how far it goes and how it predicts, not
# what trained (the rounds, the student, the file that scores, the views, the precision and batch of
# predictions; a dev file that changes what trains changes data.val_file, which the runs compare).
MAY_DIFFER = frozenset(
    {
        "resume",
        "ckpt_path",
        "pseudo_label.rounds",
        "distill.enabled",
        "paths.dev_file",
        "dig_file",
        "tta",
        "precision",
        "batch_size",
        "accelerator",
    }
)


def side(config: dict, key) -> str:
    """One side of a difference in a one-line error: absent said so, long lists (of checkpoints)
    shortened."""
    return shown(config[key], limit=120) if key in config else "(absent)"


def first_difference(old, new, where: str = "") -> str | None:
    """The first dotted key whose value differs between two plain (unresolved) configs, as
    `key: old -> new`, leaving out MAY_DIFFER; None when they are the same. Unresolved, so that
    `${now:...}` and `${hydra:...}` compare as written."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            name = f"{where}.{key}" if where else str(key)
            if name in MAY_DIFFER:
                continue
            if key not in old or key not in new:
                return f"{name}: {side(old, key)} -> {side(new, key)}"
            if found := first_difference(old[key], new[key], name):
                return found
        return None
    return None if old == new else f"{where}: {shown(old, limit=120)} -> {shown(new, limit=120)}"


def saved_config(folder: Path) -> dict | None:
    """The config a Hydra run (or a pipeline's training run) saved in `folder/.hydra/config.yaml`."""
    path = folder / ".hydra" / "config.yaml"
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None


def check_same_run(folder: Path, cfg: DictConfig) -> None:
    """Refuse to reuse or continue a training run made with a config other than `cfg`."""
    old = saved_config(folder)
    if old is not None and (diff := first_difference(old, OmegaConf.to_container(cfg, resolve=False))):
        raise ConfigError(
            f"resume: {folder} was trained with another config ({diff}); repeat the first command's "
            f"options, or delete {folder} to train it anew"
        )


def pipeline_folder(resume: str, cfg: DictConfig) -> Path:
    """The folder `resume=DIR` names, checked: the pipeline that trained there, with these options."""
    # absolute(), not resolve(): the runs' saved paths keep any symlink of the first command's.
    folder = Path(resume).expanduser().absolute()
    old = saved_config(folder)
    if old is None or old.get("task_name") != "pipeline":
        raise ConfigError(
            f"resume={resume}: not a pipeline folder (no pipeline's .hydra/config.yaml in {folder})"
        )
    if old.get("resume"):  # a resumption's own folder holds its log, not the runs
        raise ConfigError(
            f"resume={resume}: that command resumed {old['resume']}; use resume={old['resume']}"
        )
    if diff := first_difference(old, OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError(
            f"resume: {folder} was made with other options ({diff}); repeat the first command's "
            f"options, or leave out resume= to start a new pipeline"
        )
    log.info("resuming the pipeline in %s: finished runs are reused, a cut-off one resumes", folder)
    return folder


def finished_run(folder: Path) -> tuple[str, float] | None:
    """(best checkpoint, training seconds) of a training run that finished (wrote metrics.json), else None."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    checkpoint = metrics.get("best_ckpt")
    if not checkpoint or not Path(checkpoint).is_file():
        return None
    return checkpoint, float(metrics.get("train_seconds", 0.0))


def interrupted_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a cut-off training run resumes from: its latest epoch's `last.ckpt`."""
    path = folder / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def labellers_file(labels: Path) -> Path:
    """Where a pseudo-label file records the checkpoints whose ensemble labelled it."""
    return labels.with_name(labels.name.split(".")[0] + ".labelled_by.json")


def labellers_record(labelled_by: list[str]) -> dict:
    """The checkpoints that labelled a file, by path and content: a run deleted and trained anew (as
    check_same_run suggests after a conf edit) keeps its checkpoint's path, not its bytes."""
    return {"labelled_by": [str(p) for p in labelled_by], "sha256": [file_sha256(p) for p in labelled_by]}


def record_labellers(labels: Path, labelled_by: list[str]) -> None:
    write_json(labellers_file(labels), labellers_record(labelled_by))


def kept_labels(labels: Path, labelled_by: list[str]) -> bool:
    """Whether a resumed pipeline keeps the pseudo-label file `labels` rather than labelling anew: it
    exists and these checkpoints labelled it (predicting again could change a few rows its runs trained
    on). A file from before this record is kept. One that other models labelled (the rounds changed
    since, or a labeller was trained anew) is stale, and so is every run in its stage folder: the folder
    is set aside, not trained over. Records written before 2026-12-06 name the paths alone."""
    if not labels.is_file():
        return False
    record = labellers_file(labels)
    if record.is_file():
        old, new = json.loads(record.read_text()), labellers_record(labelled_by)
        if old.get("labelled_by") != new["labelled_by"] or old.get("sha256", new["sha256"]) != new["sha256"]:
            set_aside(labels.parent)
            return False
    log.info("%s: kept from the first run", labels)
    return True


def set_aside(stage: Path) -> Path:
    """Move a stage folder whose teachers changed, and its submissions, to `<stage>.superseded-N`: its
    networks are still results (a committed submission may come from them), just not this pipeline's."""
    n = 1
    while (aside := stage.with_name(f"{stage.name}.superseded-{n}")).exists():
        n += 1
    stage.rename(aside)
    for submission in (stage.parent / "submissions").glob(f"{stage.name}_*.csv"):
        submission.rename(aside / submission.name)
    log.info("%s: taught by other models than this pipeline's; set aside as %s, trained anew", stage, aside)
    return aside


def probabilities_file(folder: Path, checkpoint: str, data_file: str, views, precision: str) -> Path:
    """Where `stored_probabilities` keeps a model's probabilities on a file: named by the checkpoint's
    path, size and time (a run trained anew is predicted anew), the data file's path and content (a file
    rewritten in place is predicted anew), the views and the precision."""
    if not Path(checkpoint).is_file():  # checkpoints=[...] from the command line: one line, not a traceback
        raise CheckpointError(
            f"{checkpoint}: checkpoint not found (checkpoints=[...] takes .ckpt files written by train.py)"
        )
    stat = Path(checkpoint).stat()
    key = json.dumps(
        [
            str(checkpoint),
            stat.st_size,
            stat.st_mtime_ns,
            str(data_file),
            _content(Path(data_file)),
            str(views),
            str(precision),
        ]
    )
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"


def _content(path: Path) -> str | None:
    """The data file's sha256 (tens of ms for the 10 MB training file): size and time alone miss a file
    rewritten within the same second, as the parse cache also found."""
    try:
        return file_sha256(path)
    except OSError:
        return None  # predicting it will say what is wrong with it


def stored_probabilities(
    folder: Path, checkpoint: str, data_file: str, views, precision: str, predict: Callable[[], np.ndarray]
) -> np.ndarray:
    """A model's probabilities on a file, predicted once per pipeline folder and kept in `folder`:
    a resumed pipeline scores its finished stages without predicting them again (minutes a model on
    a CPU)."""
    path = probabilities_file(folder, checkpoint, data_file, views, precision)
    if path.is_file():
        return np.load(path)
    probs = predict()

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.save would add `.npy` to the temporary's name
            np.save(fh, probs)

    atomic_write(path, save)
    return probs
