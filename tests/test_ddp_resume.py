"""DDP jobs that are interrupted: a 2-process job killed without warning (SIGKILL to every
process, as when a machine fails) resumes with `ckpt_path=last` and ends bit for bit where an
uninterrupted 2-process job ends; SIGTERM (what schedulers send) leaves one last.ckpt and
every rank exits. Real `train.py trainer=ddp` processes on test_ddp.py's setting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli
from scale_out import assert_same_run, env, run_dirs, slice_args, wait_for

EPOCHS = 3


def start_ddp(data_dir, log_dir, *extra: str, epochs: int = EPOCHS) -> subprocess.Popen:
    """`python train.py trainer=ddp` in a process group of its own (start_new_session): rank 0 and
    the rank it starts share it, so one killpg reaches the whole job."""
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "trainer=ddp",
            *slice_args(data_dir, f"paths.log_dir={log_dir}", *extra, epochs=epochs),
        ],
        cwd=log_dir.parent,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def job_processes(pgid: int) -> list[int]:
    """Processes of the job's process group still running (a zombie waiting for its parent's
    reaper has stopped: it is not counted)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = (
                stat.read_text().rsplit(")", 1)[1].split()
            )  # after the command name, which may hold spaces
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.slow
def test_sigkilled_ddp_job_resumes_to_the_uninterrupted_result(data_dir, tmp_path):
    straight = run_cli(
        "train.py",
        "trainer=ddp",
        *slice_args(data_dir, f"paths.log_dir={tmp_path / 'straight'}", epochs=EPOCHS),
        cwd=tmp_path,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    log_dir = tmp_path / "interrupted"
    log_dir.mkdir()
    proc = start_ddp(data_dir, log_dir)
    [killed_dir] = wait_for(lambda: run_dirs(log_dir), proc)
    wait_for(killed_dir / "checkpoints" / "last.ckpt", proc)  # epoch 0 saved; the kill lands in a later epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    wait_for(lambda: not job_processes(proc.pid), timeout=10)  # rank 1 went down with rank 0
    saved = torch.load(killed_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] < EPOCHS - 1 and not (killed_dir / "metrics.json").exists(), (
        "finished before the kill"
    )

    resumed = run_cli(
        "train.py",
        "trainer=ddp",
        *slice_args(data_dir, f"paths.log_dir={log_dir}", "ckpt_path=last", epochs=EPOCHS),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [resumed_dir] = [d for d in run_dirs(log_dir) if d != killed_dir]
    assert (
        f"Restoring states from the checkpoint path at {killed_dir}"
        in (resumed_dir / "train.log").read_text()
    )
    print(
        "SIGKILL + resume vs uninterrupted (2 processes):",
        assert_same_run(resumed_dir, run_dirs(tmp_path / "straight")[0], exact=True),
    )


@pytest.mark.slow
def test_sigterm_to_rank_0_saves_one_checkpoint_and_every_rank_exits(data_dir, tmp_path):
    """`kill PID` of a DDP job: rank 0 alone gets the signal; the ranks agree to stop after the same
    batch, rank 0 saves last.ckpt once, and both exit with 143 (none left waiting in a collective)."""
    proc = start_ddp(data_dir, tmp_path, epochs=50)
    [run_dir] = wait_for(lambda: run_dirs(tmp_path), proc)
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)  # training is under way
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    wait_for(lambda: not job_processes(proc.pid), timeout=10)
    log = (run_dir / "train.log").read_text()
    assert "DDP rank 1 exited with code 143" in log  # rank 1 stopped by itself, not killed
    assert (
        log.count("interrupted at epoch") == 1 and f"ckpt_path={run_dir}" in stderr.strip().splitlines()[-1]
    )
    assert "Traceback" not in stderr and "hint:" not in stderr
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("last")) == [
        "last.ckpt"
    ]
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert 0 < saved["epoch"] < 50 and saved["global_step"] >= 16 * saved["epoch"] > 0  # after epoch 0


def test_a_loader_resumed_mid_epoch_yields_the_rest_of_that_epoch():
    """What lets a mid-epoch checkpoint resume exactly: the epoch's order is (seed, epoch)'s, and the
    batches trained on before the interruption are skipped, on every rank alike."""
    from kmnist.data.batches import TensorBatches

    data = (torch.arange(64),)
    for rank in (0, 1):
        whole = [
            b[0]
            for b in TensorBatches(data, 4, shuffle=True, seed=3, rank=rank, world_size=2, epoch_fn=lambda: 5)
        ]
        rest = [
            b[0]
            for b in TensorBatches(
                data, 4, shuffle=True, seed=3, rank=rank, world_size=2, epoch_fn=lambda: 5, done_fn=lambda: 3
            )
        ]
        assert len(whole) == 8 and len(rest) == 5
        assert all(torch.equal(a, b) for a, b in zip(whole[3:], rest))
