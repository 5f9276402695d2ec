"""Resumable Optuna studies: what a re-run of a crashed sweep still has to do.

The study lives in SQLite under the sweep folder (conf/hparams_search/optuna.yaml), so the same
command finds it again. Watch it with `optuna-dashboard sqlite:///outputs/multirun/optuna/cnn/study.db`.
"""

from __future__ import annotations

import logging
import re
from contextlib import ExitStack
from pathlib import Path

from kmnist.errors import ConfigError
from kmnist.utils.locks import exclusive_lock

log = logging.getLogger(__name__)

SQLITE = "sqlite:///"
INTERRUPTED = "interrupted"  # user attribute of a trial a crash cut short
_UNSET = object()


def study_lock_path(storage: str | None, study_name: str, sweep_dir: str) -> Path | None:
    """The lock file of a stored study: beside a SQLite file, else (a database server) in the sweep
    folder, which then guards only launches sharing that folder. None for an in-memory study."""
    if not storage:
        return None
    name = re.sub(r"[^\w.-]", "_", study_name)
    if str(storage).startswith(SQLITE):
        db = Path(str(storage)[len(SQLITE) :])
        return db.with_name(f"{db.name}.{name}.lock")
    return Path(sweep_dir) / f"optuna.{name}.lock"


def lock_study(storage: str | None, study_name: str, sweep_dir: str) -> ExitStack:
    """Hold the study for this sweep process until the returned stack closes (or the process dies).

    A second launch of a running study took the first's live trial for a crashed one, failed it and
    the first sweep died: it is refused instead. A killed sweep's lock goes with its process, so
    re-running its command still resumes the study."""
    held = ExitStack()
    if (path := study_lock_path(storage, study_name, sweep_dir)) is not None and not held.enter_context(
        exclusive_lock(path, wait=False)
    ):
        held.close()
        raise ConfigError(
            f"hydra.sweeper.study_name={study_name}: another sweep is running this study (lock {path}); "
            f"wait for it to end, or use another hydra.sweeper.study_name or hydra.sweeper.storage"
        )
    return held


def check_same_overrides(study, fixed: dict) -> None:
    """The sweeper records a launch's fixed overrides on each of its trials (user attributes): a launch
    with others (a shrunk try-out's study continued by the real command) would mix trials scored on
    other settings into one study, its sampler's model and its best trial."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False):
        # Only trials whose job ran: the sweeper sets the attributes one by one, so a trial a kill cut
        # short (still RUNNING here, or marked INTERRUPTED by an earlier launch) may hold only some.
        if (
            trial.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            or INTERRUPTED in trial.user_attrs
        ):
            continue
        before = dict(trial.user_attrs)
        if not before:  # queued, never launched
            continue
        if changed := sorted(
            key for key in before.keys() | fixed.keys() if before.get(key, _UNSET) != fixed.get(key, _UNSET)
        ):
            key = changed[0]
            raise ConfigError(
                f"hydra.sweeper.study_name={study.study_name}: its trials ran with other overrides ({key}: "
                f"{before.get(key, 'unset')} -> {fixed.get(key, 'unset')}); "
                "repeat their command to continue this study, "
                "or start another with hydra.sweeper.study_name=NAME"
            )


def resume_study(
    storage: str | None, study_name: str, n_trials: int, fixed: dict | None = None
) -> tuple[int, int]:
    """(trials still to run, the next job number) for a study of `n_trials` trials in total, whose
    launches all had the fixed overrides `fixed` (check_same_overrides; None: not checked).

    A trial still RUNNING in the storage was cut short by a crash (one sweep process per study, lock_study):
    it is marked failed and its parameters are queued to run again, first."""
    if not storage:
        return n_trials, 0
    if str(storage).startswith(SQLITE):  # SQLite creates the file, not its folder
        Path(str(storage)[len(SQLITE) :]).parent.mkdir(parents=True, exist_ok=True)
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:  # a new study: the sweeper creates it
        return n_trials, 0
    if fixed is not None:
        check_same_overrides(study, fixed)
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state(trial._trial_id, TrialState.FAIL)
            if trial.params:  # those it had drawn (a kill may come mid-draw); the rest are drawn anew
                study.enqueue_trial(trial.params)
            log.warning("study %s: trial %d was interrupted; it runs again", study_name, trial.number)
    done = sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and INTERRUPTED not in t.user_attrs)
        for t in trials
    )
    remaining = max(0, n_trials - done)
    log.info(
        "study %s in %s: %d of %d trials done, %d to run", study_name, storage, done, n_trials, remaining
    )
    # Job folder N holds trial N: the next trial is the first one queued, else a new one.
    return remaining, min((t.number for t in trials if t.state == TrialState.WAITING), default=len(trials))


def reseeded_sampler(sampler_cfg, trials_before: int):
    """A seeded sampler restarts its random stream at every launch, so a resumed study's first new
    trial repeated trial 0's draws (TPE's start-up trials are random ones). A launch that continues a
    study gets the seed offset by the trials it already holds: new draws, still reproducible. None
    when there is nothing to change (a new study, an unseeded or a partial (grid) sampler)."""
    if (
        not trials_before
        or sampler_cfg is None
        or sampler_cfg.get("seed") is None
        or sampler_cfg.get("_partial_")
    ):
        return None
    from hydra.utils import instantiate

    return instantiate(sampler_cfg, seed=int(sampler_cfg.seed) + trials_before)
