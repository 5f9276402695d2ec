"""One file over HTTP(S) or file://, with retries, into a hidden temporary file beside its target:
verified, then renamed into place, so an interrupted fetch never leaves a file a later run would
mistake for a good one. urllib, not requests: the standard library is enough for one GET, and
kmnist adds no dependency for it.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.progress import Progress

from kmnist.errors import DataError

# Worth another try: the server or the path to it may recover. A 4xx will not.
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
# 4xx worth another try: request timeout, too many requests (GitHub's raw files rate-limit).
RETRIED_CODES = {408, 429}


def _stream(url: str, tmp: Path, timeout: float, progress: Progress, task) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "kmnist-download"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        progress.reset(task, total=total)
        received = 0
        while chunk := response.read(1 << 16):
            out.write(chunk)
            received += len(chunk)
            progress.advance(task, len(chunk))
    # http.client returns a short body silently when read in chunks, so count it ourselves.
    if total is not None and received != total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def fetch_verified(
    url: str,
    target: Path,
    verify: Callable[[Path], np.ndarray],
    *,
    retries: int,
    backoff: float,
    timeout: float,
    progress: Progress,
) -> np.ndarray:
    """`verify(path)`'s array for the file at `url`, saved as `target`; a 5xx, 408, 429, a dropped
    connection or a file that fails `verify` is tried again (`retries` more times, waiting `backoff`
    doubled each time); any other 4xx fails at once. DataError naming the URL when it gives up."""
    task = progress.add_task(target.name, total=None)
    failure: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            progress.console.print(
                f"retrying {target.name} ({attempt}/{retries}): {failure}",
                style="yellow",
                markup=False,
                soft_wrap=True,
            )
            time.sleep(backoff * 2 ** (attempt - 1))
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part.gz")
        os.close(fd)
        tmp = Path(name)
        try:
            _stream(url, tmp, timeout, progress, task)
            array = verify(tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; data folders are often shared
            os.replace(tmp, target)
            return array
        except urllib.error.HTTPError as err:
            err.close()
            if err.code < 500 and err.code not in RETRIED_CODES:
                hint = " (no such file under the base URL)" if err.code == 404 else ""
                raise DataError(f"{url}: HTTP {err.code} {err.reason}{hint}") from None
            failure = DataError(f"{url}: HTTP {err.code} {err.reason}")
            wait = err.headers.get("Retry-After", "") if err.headers else ""
            if wait.isdigit() and attempt < retries:  # the server says when: that long (capped),
                time.sleep(min(int(wait), 120))  # then the backoff
        except _TRANSIENT as err:  # URLError wraps the socket error
            failure = DataError(f"{url}: {getattr(err, 'reason', None) or err}")
        except DataError as err:  # corrupted in transit, most likely: fetch it again
            failure = err
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"{failure} (gave up after {retries + 1} attempt{'s' if retries else ''})")
