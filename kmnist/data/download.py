"""Fetch the official Kannada-MNIST IDX files and convert them to the Kaggle CSV layout.

    python -m kmnist.data.download [--dest DIR] [--base-url URL] [--retries N] [--force]

Every file is downloaded (kmnist/data/fetch.py) to a hidden temporary file next to its final
name, verified (SHA-256 where known, IDX header and shape always) and only then renamed into
place, so an interrupted run never leaves a half-written file that a later run would mistake for
a good one. Two downloads into one folder take turns (a lock on its `.download.lock`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import os
import signal
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from kmnist.data.fetch import fetch_verified
from kmnist.data.release import EXPECTED_COUNTS, FILES, KNOWN_SHA256, OUTPUTS, check_idx, write_csvs
from kmnist.errors import DataError
from kmnist.utils.locks import exclusive_lock

DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/vinayprabhu/Kannada_MNIST/master/data/output_tensors/MNIST_format/"
)
DEFAULT_DEST = "data/kannada_mnist"
LOCK_NAME = ".download.lock"  # stays in the folder (kmnist/utils/locks.py says why)


def _checked_base_url(base_url: str) -> str:
    """http(s):// or file:// as given; a local folder becomes a file:// URL; anything else is one line."""
    scheme = urllib.parse.urlsplit(base_url).scheme
    if scheme in ("http", "https", "file"):
        return base_url
    if not scheme and Path(base_url).is_dir():
        return Path(base_url).resolve().as_uri() + "/"
    raise DataError(
        f"--base-url {base_url}: expected an http(s):// or file:// URL, or a folder holding the IDX files"
    )


def download(
    dest: str | os.PathLike,
    base_url: str = DEFAULT_BASE_URL,
    retries: int = 3,
    backoff: float = 1.0,
    force: bool = False,
    checksums: Mapping[str, str] = KNOWN_SHA256,
    expected_counts: Mapping[str, int] = EXPECTED_COUNTS,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and convert Kannada-MNIST into `dest`; returns `dest`.

    `retries` is the number of extra attempts per file after the first; the wait before retry k
    is `backoff * 2**(k-1)` seconds. Files already in `dest` that verify are not fetched again
    unless `force`.
    """
    base_url = _checked_base_url(base_url)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    # One download into a folder at a time: a second would remove the first's partial files as stale,
    # and both would write the same CSVs. The second waits, then finds the files verified.
    try:
        with exclusive_lock(dest / LOCK_NAME, wait=False) as held:
            if not held and progress:
                console.print(f"another download into {dest} is running; waiting for it to finish")
        lock = exclusive_lock(dest / LOCK_NAME)
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # A folder this process cannot write (read-only, shared): no download can run into it to take
        # turns with; its files are checked as they are, and one to fetch fails on its own write.
        lock = contextlib.nullcontext()
    with lock:
        return _download(
            dest, base_url, retries, backoff, force, checksums, expected_counts, console, progress, timeout
        )


def _download(
    dest: Path,
    base_url: str,
    retries: int,
    backoff: float,
    force: bool,
    checksums: Mapping[str, str],
    expected_counts: Mapping[str, int],
    console: Console,
    progress: bool,
    timeout: float,
) -> Path:
    # Left by a run killed (SIGTERM, SIGKILL) mid-download: never read, only removed.
    for stale in dest.glob(".*.part.gz"):
        stale.unlink(missing_ok=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
    )
    arrays, fetched = {}, False
    with bar:
        for split, names in FILES.items():
            for name in names:
                target = dest / name
                verify = functools.partial(
                    check_idx, name=name, count=expected_counts[split], checksums=checksums
                )
                if target.is_file() and not force:
                    try:
                        arrays[name] = verify(target)
                        continue
                    except DataError as err:
                        console.print(
                            f"{err}; downloading it again", style="yellow", markup=False, soft_wrap=True
                        )
                url = base_url.rstrip("/") + "/" + name
                arrays[name] = fetch_verified(
                    url, target, verify, retries=retries, backoff=backoff, timeout=timeout, progress=bar
                )
                fetched = True
    if fetched or force or not all((dest / out).is_file() for out in (*OUTPUTS, "PROVENANCE.md")):
        if progress:
            console.print(f"converting to CSV in {dest} ...")
        write_csvs(dest, arrays, base_url)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kmnist.data.download", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dest",
        default=os.environ.get("KMNIST_DATA") or DEFAULT_DEST,
        help=f"output folder (default: $KMNIST_DATA, else {DEFAULT_DEST})",
    )
    parser.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help="where the IDX files live (default: the author's GitHub)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="extra attempts per file after a failed or corrupt download (default: %(default)s)",
    )
    parser.add_argument(
        "--force", action="store_true", help="download again even if verified files are present"
    )
    args = parser.parse_args(argv)
    # SIGTERM (a scheduler, `kill`) as an exception: the download's cleanup runs and no partial file stays.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        # A bar drawn into a log file or pipe is noise; show it only to a person at a terminal.
        dest = download(
            args.dest,
            base_url=args.base_url,
            retries=max(args.retries, 0),
            force=args.force,
            progress=sys.stderr.isatty(),
        )
    except (DataError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; no partial files were kept", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"Kannada-MNIST is ready in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
