"""The project's error types for a user's input: each message names the option or file at fault.

Every error class lives here, and this module imports nothing from kmnist, so any layer can
raise them without an import circle. Entry points print these as one `error: ...` line, without a
traceback (kmnist.tasks.wrapper); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """An option's value is invalid (the message names the option, e.g. `data.val_writers=60`)."""


class DataError(ValueError):
    """A data file is missing, malformed or out of range; the message names the file and place."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe, truncated or not a kmnist checkpoint."""


class ExportError(RuntimeError):
    """An exported model does not reproduce PyTorch's outputs (the file is removed)."""


USER_ERRORS = (ConfigError, DataError, CheckpointError, ExportError)

# What a sweep job that crashed leaves in its folder (its error's last line): written by
# kmnist.tasks.wrapper.sweep_job, read by the leaderboard (kmnist.report.sweep). Here, where both may import.
FAILED_JOB_FILE = "failed.txt"


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind `err` (Hydra wraps errors raised while instantiating), or None."""
    seen = err
    while seen is not None:
        if isinstance(seen, USER_ERRORS):
            return seen
        seen = seen.__cause__
    return None
