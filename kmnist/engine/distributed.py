"""Multi-process (DDP) training on one machine, with the extra processes started by kmnist.

Lightning's own launcher re-runs `sys.argv` once per extra rank, and under Hydra that goes wrong:
in a multirun the arguments hold `-m` and the sweep lists, so rank 1 starts a whole sweep of its
own (a second multirun folder whose leaderboard has no metrics), and in a joblib worker `sys.argv`
is not train.py at all. So rank 0 starts ranks 1..N-1 as `python -m kmnist.tasks.rank`, hands
them its resolved config on stdin, and sets LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
NODE_RANK: Lightning's contract for processes created outside it (`LightningEnvironment`). The
extra ranks run without Hydra, so the job keeps one run directory and only rank 0 writes to it.

Under torchrun or SLURM (processes created by the cluster), this module stays out of the way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from kmnist.engine.run_config import plain_config

log = logging.getLogger(__name__)

# What a job sets for its ranks and gives back when it ends, so the next job of a multirun in
# this process is launched afresh (a stale LOCAL_RANK would tell Lightning the ranks exist).
_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")
# A rank that fails: how long rank 0 may take to fail by itself before it is killed.
_GRACE_SECONDS = 30.0


def cpu_without_sync_batchnorm(cfg: DictConfig, module: nn.Module) -> None:
    """torch's SyncBatchNorm accepts GPU tensors only: on the CPU switch `trainer.sync_batchnorm` off,
    and warn when the model has BatchNorm, whose statistics then come from each process's share."""
    trainer_cfg = cfg.trainer
    if not trainer_cfg.get("sync_batchnorm"):
        return
    accelerator = trainer_cfg.get("accelerator", "auto")
    if accelerator != "cpu" and not (accelerator == "auto" and not torch.cuda.is_available()):
        return
    with open_dict(trainer_cfg):
        trainer_cfg.sync_batchnorm = False
    batchnorm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    if pl.utilities.rank_zero_only.rank == 0 and any(isinstance(m, batchnorm) for m in module.modules()):
        log.warning(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm); on the CPU each process's "
            "BatchNorm uses its own share of the batch, so results differ slightly from one process"
        )


def starts_processes(trainer: pl.Trainer) -> bool:
    """Whether Lightning would start this machine's extra ranks itself: plain `ddp` run as
    `python train.py` (not under torchrun, SLURM, or as a rank this module started)."""
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher  # exported by Lightning

    return (
        isinstance(trainer.strategy.launcher, _SubprocessScriptLauncher)
        and trainer.num_devices > 1
        and trainer.num_nodes == 1
        and not trainer.strategy.cluster_environment.creates_processes_externally
    )


@contextlib.contextmanager
def ranks(trainer: pl.Trainer, cfg: DictConfig):
    """Run the body as rank 0 with ranks 1..N-1 in child processes when `trainer` asks for
    several. Afterwards reap them and restore this process (environment, thread count, no
    process group), so the next job of a multirun starts afresh on a port of its own."""
    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    saved_env = {name: os.environ.get(name) for name in _ENV}
    saved_threads = torch.get_num_threads()
    children: list[subprocess.Popen] = []
    watcher = None
    try:
        if starts_processes(trainer):
            world = trainer.num_devices
            # A free port per job unless the user chose one: jobs of a multirun never share a port.
            os.environ.update(
                MASTER_ADDR=os.environ.get("MASTER_ADDR", "127.0.0.1"),
                MASTER_PORT=os.environ.get("MASTER_PORT") or str(find_free_network_port()),
                NODE_RANK="0",
                WORLD_SIZE=str(world),
                LOCAL_RANK="0",
            )
            if "OMP_NUM_THREADS" not in os.environ:  # share the cores, as Lightning's launcher would
                os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // world))
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
            log.info("DDP: starting ranks 1..%d; MASTER_PORT=%s", world - 1, os.environ["MASTER_PORT"])
            children = [_start_rank(rank, cfg) for rank in range(1, world)]
            watcher = _Watcher(children)
            watcher.start()
        try:
            yield
        except SIGTERMException:
            # All ranks stop together on a SIGTERM (kmnist.callbacks.interrupt) and leave by themselves
            # once the checkpoint is saved: wait for them rather than kill them.
            for rank, child in enumerate(children, start=1):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    log.info("DDP rank %d exited with code %d", rank, child.wait(timeout=_GRACE_SECONDS))
            raise
        if watcher is not None:
            watcher.stop()
        for rank, child in enumerate(children, start=1):
            code = child.wait(timeout=300)
            if code != 0:
                raise RuntimeError(
                    f"DDP rank {rank} (pid {child.pid}) exited with code {code}; its error is printed above"
                )
    finally:
        if watcher is not None:
            watcher.stop()
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        # Lightning leaves the process group up and its launcher sets LOCAL_RANK even for one
        # device: left over, either would make the next job's ranks wait for processes never started.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        torch.set_num_threads(saved_threads)


def _start_rank(rank: int, cfg: DictConfig) -> subprocess.Popen:
    package_root = str(Path(__file__).resolve().parents[2])  # this kmnist, not another installed copy
    env = {
        **os.environ,
        "LOCAL_RANK": str(rank),
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "kmnist.tasks.rank"], stdin=subprocess.PIPE, env=env, text=True
    )
    # Resolved (the child has no Hydra to resolve `${hydra:...}` with), and without the hydra node.
    child.stdin.write(OmegaConf.to_yaml(plain_config(cfg)))
    child.stdin.close()
    return child


class _Watcher(threading.Thread):
    """A rank that dies leaves the others waiting in a collective (30 minutes by default). When one
    fails, stop the other children; if rank 0 has not failed by itself within the grace period
    (blocked where Python cannot interrupt it), kill it, as Lightning's own launcher does."""

    def __init__(self, children: list[subprocess.Popen]):
        super().__init__(daemon=True, name="kmnist-ddp-watcher")
        self.children, self._stopped = children, threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(1.0):
            failed = [
                (rank, child)
                for rank, child in enumerate(self.children, start=1)
                if child.poll() not in (None, 0)
            ]
            if not failed:
                continue
            rank, child = failed[0]
            # 143: stopped on SIGTERM, which all ranks act on together (kmnist.callbacks.interrupt): the
            # others are saving and leaving too, so they get the grace period before anything is killed.
            if child.returncode == 143 and self._stopped.wait(_GRACE_SECONDS):
                return
            log.error(
                "DDP rank %d (pid %d) exited with code %d; stopping the job",
                rank,
                child.pid,
                child.returncode,
            )
            for other in self.children:
                if other.poll() is None:
                    other.kill()
            if not self._stopped.wait(_GRACE_SECONDS):
                log.error(
                    "rank 0 is still waiting for the dead rank after %.0f s: killing it", _GRACE_SECONDS
                )
                os.kill(os.getpid(), signal.SIGKILL)
            return
