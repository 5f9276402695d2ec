"""The project's error types for a user's input: each message names the option or file at fault.

Entry points (train.py, predict.py, export) print these as one `error: ...` line, without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """An option's value is invalid (the message names the option, e.g. `data.val_writers=60`)."""


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind `err` (Hydra wraps errors raised while instantiating), or None."""
    from kmnist.data.io import DataError
    from kmnist.inference import CheckpointError

    seen = err
    while seen is not None:
        if isinstance(seen, (ConfigError, DataError, CheckpointError)):
            return seen
        seen = seen.__cause__
    return None
