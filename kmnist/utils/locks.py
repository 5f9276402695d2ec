"""An exclusive lock between processes on one machine (fcntl.flock on a lock file).

The kernel drops the lock when its holder's process ends, however it ends: a killed process
never leaves a stale lock behind. The lock file itself stays (removing it would let a third
process lock a new file while a second still holds the old one).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created with its folder if missing) for the block; yields True.
    wait=False: yields False at once, holding nothing, when another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open's descriptor is not inherited across exec: processes a holder starts do not keep its lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            held = True
        except BlockingIOError:
            held = False
        yield held
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
