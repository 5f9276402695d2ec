"""Resumable Optuna studies through the real CLI and a real SQLite study: a sweep killed after two
trials, re-run with the same command, ends with one study of four finished trials."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from conftest import ROOT, run_cli
from optuna.trial import TrialState
from test_sweeps import tiny_run

from kmnist.errors import ConfigError


def count_trials(db, where: str = "") -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(f"SELECT COUNT(*) FROM trials {where}").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def finished_trials(db) -> int:
    return count_trials(db, "WHERE state = 'COMPLETE'")


def test_a_crashed_optuna_sweep_continues_its_study(data_dir, tmp_path):
    command = [
        "-m",
        "hparams_search=optuna",
        "model=dnn",
        "hydra.sweeper.n_trials=4",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
    ]
    sweep = tmp_path / "multirun" / "optuna" / "dnn"  # stable: the same command finds the same study
    db = sweep / "study.db"

    # First launch: killed (no clean-up, like a lost machine) once two trials have finished.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while finished_trials(db) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert finished_trials(db) == 2

    # The same command again: it continues the study instead of starting over.
    done = run_cli("train.py", *command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 of 4 trials done, 2 to run" in done.stderr + done.stdout
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{db}")
    assert summary.study_name == "dnn"
    trials = optuna.load_study(study_name="dnn", storage=f"sqlite:///{db}").trials
    complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    # A trial the kill cut short is recorded as failed, and the parameters it had drawn (all of them
    # once its job started) run again next.
    failed = [t for t in trials if t.state != TrialState.COMPLETE]
    assert len(failed) <= 1 and all(t.state == TrialState.FAIL for t in failed)
    if failed:
        assert failed[0].params.items() <= trials[failed[0].number + 1].params.items()
    # The trials drawn after the resume are new ones: a seeded sampler restarted at every launch
    # repeated trial 0's parameters.
    rerun = failed[0].number + 1 if failed else None
    drawn_after = [
        t for t in trials if t.number >= 2 and t.state == TrialState.COMPLETE and t.number != rerun
    ]
    assert drawn_after and all(
        t.params != trials[0].params and t.params != trials[1].params for t in drawn_after
    )
    # Job folder N holds trial N; the leaderboard ranks the whole study.
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert sorted(board.loc[board["status"] == "ok", "job"]) == complete


def trials_started(db) -> int:
    return count_trials(db)


def test_a_second_launch_of_a_running_study_is_refused(data_dir, tmp_path):
    """The same command again while the first sweep still runs its study: refused in one line, and the
    first goes on to the end (the second took its live trial for a crashed one, failed it, and the
    first died). Once the first has ended the study is free again."""
    command = [
        "-m",
        "hparams_search=optuna",
        "model=dnn",
        "hydra.sweeper.n_trials=6",
        f"paths.data_dir={data_dir}",
        *tiny_run(tmp_path),
    ]
    sweep = tmp_path / "multirun" / "optuna" / "dnn"
    db = sweep / "study.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while trials_started(db) < 1 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the first sweep ended before the second launch"

    second = run_cli("train.py", *command, cwd=tmp_path)
    assert second.returncode == 1, (
        "the first sweep had ended already (too quick to test)\n" if first.poll() == 0 else ""
    ) + second.stderr[-3000:]
    assert second.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.study_name=dnn: another sweep is running this study "
        f"(lock {sweep / 'study.db.dnn.lock'}); "
        "wait for it to end, or use another hydra.sweeper.study_name or hydra.sweeper.storage"
    )

    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="dnn", storage=f"sqlite:///{db}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    # Its lock went with the first sweep: the same command is let in (and finds nothing left to run).
    again = run_cli("train.py", *command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "6 of 6 trials done, 0 to run" in again.stderr + again.stdout


def test_a_study_continued_with_other_overrides_is_refused(data_dir, tmp_path):
    """A study's trials share their fixed overrides (the sweeper records them on every trial): a shrunk
    try-out study continued by the real command mixed trials scored on other settings into one study,
    its TPE model and its best trial. n_trials is the study's size, not a trial's setting: it may grow."""
    command = ["-m", "hparams_search=optuna", "model=dnn", f"paths.data_dir={data_dir}", *tiny_run(tmp_path)]
    first = run_cli("train.py", *command, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    other = [arg.replace("limit_train_batches=3", "limit_train_batches=5") for arg in command]
    changed = run_cli("train.py", *other, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert changed.returncode == 1, changed.stderr[-3000:]
    assert changed.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper.study_name=dnn: its trials ran with other overrides "
        "(trainer.limit_train_batches: 3 -> 5); "
        "repeat their command to continue this study, or start another with hydra.sweeper.study_name=NAME"
    )
    db = tmp_path / "multirun" / "optuna" / "dnn" / "study.db"
    assert count_trials(db) == 1
    more = run_cli("train.py", *command, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    assert "1 of 2 trials done, 1 to run" in more.stderr + more.stdout and finished_trials(db) == 2


def test_a_trial_killed_while_its_overrides_were_recorded_does_not_block_the_study(tmp_path):
    """The sweeper records a trial's fixed overrides one attribute at a time: a SIGKILL between two left a
    RUNNING trial with only some, and the same command was refused ('data.dir: unset -> ...')."""
    from kmnist.tasks.study import resume_study

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    fixed = {"model": "dnn", "data.dir": "/data", "trainer.max_epochs": "1"}
    study = optuna.create_study(study_name="dnn", storage=storage, direction="maximize")
    done = study.ask({"lr": optuna.distributions.LogUniformDistribution(1e-4, 1e-1)})
    for key, value in fixed.items():
        done.set_user_attr(key, value)
    study.tell(done, 0.9)
    cut_short = study.ask()  # killed after its first attribute: still RUNNING in the storage
    cut_short.set_user_attr("model", "dnn")
    assert resume_study(storage, "dnn", 3, fixed) == (2, 2)
    # A finished trial's overrides still count: another command is refused.
    with pytest.raises(
        ConfigError, match=r"its trials ran with other overrides \(data.dir: /data -> /elsewhere\)"
    ):
        resume_study(storage, "dnn", 3, {**fixed, "data.dir": "/elsewhere"})
