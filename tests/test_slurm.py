"""kmnist on a real SLURM cluster: one node on 127.0.0.1 brought up by tests/slurm/cluster.sh
(munged, slurmctld, slurmd; state in a temporary folder) for the pytest session and stopped after it.
Skipped, with the reason, where Debian's slurm-wlm and munge are not installed or the cluster
does not come up within a minute.

- a 2-job sweep through the submitit SLURM launcher (`-m hydra/launcher=slurm`);
- a 2-task DDP job whose ranks SLURM starts (`--ntasks-per-node=2`, `srun`, Lightning's SLURM
  environment), equal to one process on test_ddp.py's setting;
- a job preempted with `scancel --signal=TERM` that saves last.ckpt, and its resubmission that
  resumes from it and ends where an uninterrupted job ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT
from scale_out import assert_same_run, free_port, run_dirs, slice_args, wait_for

# One cluster per pytest run, and test_torchrun.py's one-process reference: one xdist worker runs them all.
pytestmark = pytest.mark.xdist_group("scale_out")

CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> dict:
    """The environment that points SLURM's commands at a cluster started for this pytest session."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(
            f"SLURM tests need Debian's slurm-wlm and munge (apt-get install slurm-wlm munge): "
            f"{', '.join(missing)} not found"
        )
    # .ci/run names the folder, so that its trap can stop the daemons should pytest be killed.
    state = (
        Path(os.environ["KMNIST_SLURM_DIR"])
        if os.environ.get("KMNIST_SLURM_DIR")
        else tmp_path_factory.mktemp("slurm")
    )
    try:
        up = subprocess.run([str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        up = None
    if up is None or up.returncode != 0:
        subprocess.run([str(CLUSTER), "stop", str(state)], capture_output=True, timeout=120)
        reason = "timed out" if up is None else (up.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"the SLURM cluster did not come up within a minute ({reason}); logs in {state}")
    # Jobs inherit this environment (sbatch --export=ALL): drop any SLURM job pytest itself runs in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    env.update(SLURM_CONF=str(state / "slurm.conf"), PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="1")
    yield env
    subprocess.run([str(CLUSTER), "stop", str(state)], capture_output=True, timeout=120)


def sbatch(env: dict, out: Path, command: str, *options: str) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", f"--output={out}", "--chdir", str(out.parent), *options, "--wrap", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().split(";")[0]


def job_state(env: dict, job: str) -> dict:
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


def wait_job(env: dict, job: str, timeout: float = 300) -> dict:
    """Until the job has ended; its scontrol record (JobState, ExitCode)."""
    deadline = time.time() + timeout
    while (state := job_state(env, job)).get("JobState") in (
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        None,
    ):
        assert time.time() < deadline, (
            f"job {job} still {state.get('JobState')} after {timeout:.0f} s: {state.get('Reason')}"
        )
        time.sleep(0.5)
    return state


def train_command(*args: str) -> str:
    return " ".join([sys.executable, str(ROOT / "train.py"), *args])


@pytest.mark.slow
def test_a_sweep_through_the_submitit_slurm_launcher(slurm, data_dir, tmp_path):
    """Each job of `-m` is a SLURM job (CPU settings: no GPU, one CPU, 2 GB)."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.gpus_per_node=null",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=10",
            "model=dnn",
            "seed=1,2",
            f"paths.data_dir={data_dir}",
            "data.val_writers=1",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=1",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "report=false",
            f"paths.log_dir={tmp_path}",
        ],
        cwd=tmp_path,
        env=slurm,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = list((tmp_path / "multirun").glob("*/*"))
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert len(board) == 2 and (board["status"] == "ok").all()
    for job in (0, 1):
        metrics = pd.read_json(sweep / str(job) / "metrics.json", typ="series")
        assert 0 <= metrics["val/acc"] <= 1 and metrics["epochs"] == 1
        assert board.loc[board["job"] == job, "val/acc"].item() == pytest.approx(metrics["val/acc"])
    # Each ran as a SLURM job of its own (one array job, two tasks): submitit's folder per job holds its log.
    assert len({p.parent.name for p in (sweep / ".submitit").glob("*/*_log.out")}) == 2


@pytest.mark.slow
def test_a_two_task_ddp_job_started_by_slurm_matches_one_process(
    slurm, data_dir, tmp_path, one_process_slice
):
    env = {**slurm, "MASTER_PORT": str(free_port())}  # else Lightning derives it from the job id
    job = sbatch(
        env,
        tmp_path / "job.out",
        "srun " + train_command("trainer=ddp", *slice_args(data_dir, f"paths.log_dir={tmp_path}")),
        "--nodes=1",
        "--ntasks-per-node=2",
        "--cpus-per-task=1",
        "--mem=4G",
    )
    state = wait_job(env, job)
    assert (state["JobState"], state["ExitCode"]) == ("COMPLETED", "0:0"), (tmp_path / "job.out").read_text()[
        -3000:
    ]
    [run_dir] = run_dirs(tmp_path)  # one run directory for both tasks
    log = (run_dir / "train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1" not in log
    assert "DDP: starting ranks" not in log  # SLURM started rank 1, not kmnist
    print("SLURM 2-task DDP vs one process:", assert_same_run(run_dir, one_process_slice))


@pytest.mark.slow
def test_a_preempted_job_resumes_from_last_ckpt_to_the_same_result(slurm, data_dir, tmp_path):
    epochs = 3
    args = slice_args(data_dir, "trainer.check_val_every_n_epoch=1", epochs=epochs)
    straight = sbatch(
        slurm,
        tmp_path / "straight.out",
        "srun " + train_command(*args, f"hydra.run.dir={tmp_path / 'straight'}"),
        "--ntasks=1",
        "--cpus-per-task=1",
        "--mem=2G",
    )
    run = tmp_path / "preempted"
    job = sbatch(
        slurm,
        tmp_path / "preempted.out",
        "srun " + train_command(*args, f"hydra.run.dir={run}"),
        "--ntasks=1",
        "--cpus-per-task=1",
        "--mem=2G",
    )
    wait_for(run / "checkpoints" / "last.ckpt", timeout=300)  # epoch 0 done: preempt during a later one
    subprocess.run(["scancel", "--signal=TERM", job], env=slurm, check=True, timeout=30)
    state = wait_job(slurm, job)
    out = (tmp_path / "preempted.out").read_text()
    assert "interrupted at epoch" in out and f"ckpt_path={run}" in out, out[-3000:]
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] < epochs - 1 and not (run / "metrics.json").exists(), (
        "finished before the preemption"
    )

    resumed = sbatch(
        slurm,
        tmp_path / "resumed.out",
        "srun " + train_command(*args, f"hydra.run.dir={tmp_path / 'resumed'}", f"ckpt_path={run}"),
        "--ntasks=1",
        "--cpus-per-task=1",
        "--mem=2G",
    )
    for name, ended in (("straight", wait_job(slurm, straight)), ("resumed", wait_job(slurm, resumed))):
        assert (ended["JobState"], ended["ExitCode"]) == ("COMPLETED", "0:0"), (
            tmp_path / f"{name}.out"
        ).read_text()[-3000:]
    print(
        f"preempted ({state['JobState']}, exit {state['ExitCode']}) "
        f"at epoch {saved['epoch']} step {saved['global_step']}; "
        "resumed vs uninterrupted:",
        assert_same_run(tmp_path / "resumed", tmp_path / "straight", exact=True),
    )
