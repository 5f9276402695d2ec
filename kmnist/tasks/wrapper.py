"""One way for every entry point (train, predict, export, the pipeline, a DDP rank) to end.

Like lightning-hydra-template's `task_wrapper`: a user's mistake (a `ConfigError`, `DataError`,
`CheckpointError` or `ExportError`, however deeply Hydra wrapped it) ends as one `error: ...`
line and exit code 1; anything else is a bug and keeps its traceback. A SIGTERM that Lightning
turned into a saved checkpoint ends with exit code 143 (128 + SIGTERM, as schedulers expect).
In a sweep, `sweep_job` lets the other jobs run past one that crashed.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from omegaconf.errors import MissingMandatoryValue

from kmnist.errors import FAILED_JOB_FILE, user_error

T = TypeVar("T")


def _rank() -> str | None:
    """This process's global rank when it is one of several: torchrun's RANK, SLURM's, or LOCAL_RANK
    (the ranks kmnist starts itself)."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return os.environ[name]
    return None


def _rank_prefix() -> str:
    """Ranks other than 0 say who they are: rank 0 reports the same error."""
    rank = _rank()
    return f"rank {rank}: " if rank not in (None, "0") else ""


def resume_hint(cfg) -> str:
    """How to continue after a SIGTERM: a training run from its folder; a pipeline (whose member was
    cut off) by running it again on its own folder, which has no ckpt_path option."""
    output_dir = cfg.get("paths", {}).get("output_dir")
    if cfg.get("task_name") == "pipeline":
        return f"run the same command again with resume={cfg.get('resume') or output_dir}"
    return f"resume with ckpt_path={output_dir}"


def one_line_per_log_record() -> None:
    """`import lightning` gives its logger a console handler of its own ("INFO: ..."), and its records
    also reach the root's (Hydra's console and log file): every Lightning line was printed twice.
    Where the root has handlers, Lightning's own goes."""
    if logging.getLogger().handlers:
        logging.getLogger("lightning").handlers.clear()


class _NoAdverts(logging.Filter):
    """Lightning's Trainer prints a tip to install its cloud logger (litlogger) on every run, unless that
    logger is in use: an advert, not a message about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def quiet_library_noise() -> None:
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in logger.filters):
        logger.addFilter(_NoAdverts())
    # Lightning's own use of torch's pytree API, deprecated by this torch: nothing a user can change.
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", module="lightning"
    )


def task_wrapper(task: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(task)
    def run(cfg, *args, **kwargs) -> T:
        one_line_per_log_record()
        quiet_library_noise()
        try:
            return task(cfg, *args, **kwargs)
        except Exception as err:
            if isinstance(err, MissingMandatoryValue):  # a `???` option left unset, e.g. predict.py's ckpt
                raise SystemExit(
                    f"{_rank_prefix()}error: {err.full_key}: a required option with no default; "
                    f"pass {err.full_key}=... (e.g. ckpt=outputs/runs/DATE/TIME/checkpoints/last.ckpt)"
                ) from None
            if (cause := user_error(err)) is None:
                raise
            raise SystemExit(f"{_rank_prefix()}error: {cause}") from None
        except SystemExit as exit_:
            from lightning.pytorch.utilities.exceptions import SIGTERMException  # only Lightning raises it

            if not isinstance(exit_, SIGTERMException):
                raise
            if _rank() in (None, "0"):  # rank 0 owns the run directory; the others' hint would be a duplicate
                print(f"SIGTERM: checkpoint saved; {resume_hint(cfg)}", file=sys.stderr)
            raise SystemExit(143) from None

    return run


def sweep_job(task: Callable[..., T]) -> Callable[..., T | None]:
    """In a multirun (`sweep_continue_on_crash`, the default), a job that crashes is logged with its
    traceback, leaves `failed.txt` (its error's last line) in its folder for the leaderboard's status,
    and returns None: Hydra's basic sweeper would otherwise run the rest of its batch, then re-raise
    the first crash and write no leaderboard for any job. A user's mistake (task_wrapper's SystemExit)
    still ends the sweep: every job would make it."""

    @functools.wraps(task)
    def run(cfg, *args, **kwargs) -> T | None:
        output_dir = cfg.get("paths", {}).get("output_dir")
        if output_dir:  # a job re-run in the same sweep folder: an earlier crash's mark is no longer true
            (Path(output_dir) / FAILED_JOB_FILE).unlink(missing_ok=True)
        try:
            return task(cfg, *args, **kwargs)
        except Exception as err:
            if not (cfg.get("sweep_continue_on_crash") and _in_multirun() and output_dir):
                raise
            from kmnist.utils.atomic import atomic_write_text

            logging.getLogger(__name__).exception(
                "this job crashed; the sweep goes on (sweep_continue_on_crash=true)"
            )
            reason = f"{type(err).__name__}: {err}".strip().splitlines()[-1]
            atomic_write_text(Path(output_dir) / FAILED_JOB_FILE, reason + "\n")
            return None

    return run


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
