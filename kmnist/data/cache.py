"""The on-disk cache of parsed tables: uint8 `.npy` files keyed by the source's content hash, so
the second load of the 60k training CSV skips pandas entirely. A missing, stale or corrupt entry
is rebuilt, never trusted; entries appear atomically (a staging folder renamed into place)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from kmnist.data.table import DigitTable
from kmnist.utils.hashing import file_sha256

CACHE_FORMAT = 1  # bump when the cached layout changes, so old entries are rebuilt


def default_cache_dir() -> Path:
    return Path(os.environ.get("KMNIST_CACHE") or Path.home() / ".cache" / "kmnist")


def cache_entry(path: Path, cache_dir: Path) -> tuple[Path, dict]:
    stat = path.stat()
    source = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": file_sha256(path),
        "format": CACHE_FORMAT,
    }
    return cache_dir / f"{path.name}-{source['sha256'][:20]}", source


def load_cached(entry: Path, source: dict) -> DigitTable | None:
    """The cached table if it is complete and made from exactly this source; None otherwise."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("source") != source:
            return None
        arrays = {name: np.load(entry / f"{name}.npy", allow_pickle=False) for name in meta["arrays"]}
        images = arrays["images"]
        if images.dtype != np.uint8 or images.shape != tuple(meta["shape"]):
            return None
        if any(len(a) != len(images) for a in arrays.values()):
            return None
        return DigitTable(images=images, labels=arrays.get("labels"), ids=arrays.get("ids"))
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # missing or corrupt: rebuilt by the caller, never trusted


def store_cached(entry: Path, source: dict, table: DigitTable) -> None:
    arrays = {"images": table.images, "labels": table.labels, "ids": table.ids}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        meta = {"source": source, "arrays": list(arrays), "shape": list(table.images.shape)}
        (staging / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(staging, entry)  # atomic: readers see the whole entry or none of it
    except OSError:
        shutil.rmtree(
            locals().get("staging", entry.parent / ".none"), ignore_errors=True
        )  # a read-only cache only costs speed
