"""Readers for the Kaggle CSV layout and MNIST IDX files, with validation and an on-disk cache.

Every problem with an input raises `DataError` with one line naming the file and, where it
applies, the line and column at fault. Parsed arrays are cached as uint8 `.npy` files keyed by
the source's content hash, so the second load of the 60k training CSV skips pandas entirely.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kmnist.atomic import atomic_write
from kmnist.errors import DataError  # noqa: F401  (raised here; importable from here as before)

IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
PIXEL_COLUMNS = [f"pixel{k}" for k in range(N_PIXELS)]
META_COLUMNS = ("id", "label")
CHUNK_ROWS = 20_000  # rows parsed at a time: ~125 MB of int64 per block
CACHE_FORMAT = 1  # bump when the cached layout changes, so old entries are rebuilt
DOWNLOAD_HINT = "set KMNIST_DATA (or data.dir=...) to the folder holding it, or fetch the data with `python -m kmnist.data.download`"


@dataclass
class DigitTable:
    """Images as uint8 (N, 28, 28); labels int64 (N,) or None; ids (N,) or None."""

    images: np.ndarray
    labels: np.ndarray | None = None
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


# ---------------------------------------------------------------- CSV


def _csv_columns(path: Path) -> list[str]:
    try:
        header = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header `label,pixel0..pixel783` or `id,pixel0..pixel783`)") from None
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({type(err).__name__}: {err})") from None
    return [str(c).strip().lstrip("\ufeff") for c in header.columns]


def _check_header(path: Path, columns: list[str]) -> list[str]:
    """Return the leading meta columns (subset of id/label) or raise naming the first bad column."""
    meta = []
    for name in columns:
        if name in META_COLUMNS and name not in meta and len(meta) < 2:
            meta.append(name)
        else:
            break
    pixels = columns[len(meta):]
    if pixels == PIXEL_COLUMNS:
        return meta
    for k, (got, want) in enumerate(zip(pixels, PIXEL_COLUMNS)):
        if got != want:
            raise DataError(f"{path}: column {len(meta) + k + 1} is named {got!r}, expected {want!r} (layout: optional id/label, then pixel0..pixel783)")
    if len(pixels) < N_PIXELS:
        raise DataError(f"{path}: has {len(columns)} columns, expected {len(meta) + N_PIXELS} ({len(meta)} id/label + 784 pixels); pixel{len(pixels)} onwards is missing")
    raise DataError(f"{path}: has {len(columns)} columns, expected {len(meta) + N_PIXELS}; unexpected extra column {pixels[N_PIXELS]!r}")


def _first_bad(path: Path, frame: pd.DataFrame, bad: np.ndarray, what: str, first_line: int) -> DataError:
    row, col = np.argwhere(bad)[0]
    value = frame.iat[row, col]
    return DataError(f"{path}: line {first_line + row}, column {frame.columns[col]}: {what} (got {value!r})")


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


def _parse_chunk(path: Path, frame: pd.DataFrame, meta: list[str], first_line: int) -> DigitTable:
    """Validate one block of rows (`first_line`: the file line of its first row) and convert it."""
    if all(pd.api.types.is_integer_dtype(t) for t in frame.dtypes):
        values = frame.to_numpy(dtype=np.int64)  # the common, clean case: no coercion needed
    else:
        # Coerce each column to numbers; text becomes NaN and is reported with its original value.
        values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if values.dtype == np.float64:
        missing = np.isnan(values)
        if missing.any():
            row, col = np.argwhere(missing)[0]
            what = "missing value (NaN)" if pd.isna(frame.iat[row, col]) else "not a number"
            raise _first_bad(path, frame, missing, what, first_line)
        fractional = values != np.round(values)
        if fractional.any():
            raise _first_bad(path, frame, fractional, "not an integer", first_line)

    pixels = values[:, len(meta):]
    out_of_range = (pixels < 0) | (pixels > 255)
    if out_of_range.any():
        row, col = np.argwhere(out_of_range)[0]
        raise DataError(f"{path}: line {first_line + row}, column pixel{col}: value {frame.iat[row, len(meta) + col]!r} is outside 0..255")
    table = DigitTable(images=pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE))
    if "label" in meta:
        labels = values[:, meta.index("label")]
        bad = (labels < 0) | (labels > 9)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(f"{path}: line {first_line + row}, column label: {frame['label'].iat[row]!r} is not a digit 0..9")
        table.labels = labels.astype(np.int64)
    if "id" in meta:
        table.ids = values[:, meta.index("id")].astype(np.int64)
    return table


def _parse_csv(path: Path, chunk_rows: int = CHUNK_ROWS) -> DigitTable:
    """Stream the CSV in blocks of rows: memory stays near the uint8 result (784 bytes a row),
    and a file too large for memory is refused with an estimate instead of the process being killed."""
    meta = _check_header(path, _csv_columns(path))
    available = _available_memory()
    chunks: list[DigitTable] = []
    rows = 0
    try:
        for frame in pd.read_csv(path, chunksize=chunk_rows, low_memory=False):
            frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
            chunks.append(_parse_chunk(path, frame, meta, first_line=rows + 2))  # line 1 is the header
            rows += len(frame)
            if available is not None and rows * (N_PIXELS + 16) > available // 2:
                raise DataError(f"{path}: more than {rows:,} rows need over {rows * (N_PIXELS + 16) / 2**30:.1f} GiB as uint8, "
                                f"more than half the {available / 2**30:.1f} GiB of memory available; split the file")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot be read as CSV ({type(err).__name__}: {str(err).strip()})") from None
    if rows == 0:
        raise DataError(f"{path}: has a header but no data rows")

    table = DigitTable(images=np.concatenate([c.images for c in chunks]))
    if "label" in meta:
        table.labels = np.concatenate([c.labels for c in chunks])
    if "id" in meta:
        ids = np.concatenate([c.ids for c in chunks])
        dup = pd.Series(ids).duplicated().to_numpy()
        if dup.any():
            row = int(np.argmax(dup))
            raise DataError(f"{path}: line {row + 2}, column id: duplicate id {ids[row]} (ids must be unique)")
        table.ids = ids
    return table


# ---------------------------------------------------------------- IDX

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an MNIST IDX file (`.gz` or plain) of unsigned bytes: images (N, 28, 28) or labels (N,)."""
    path = Path(path)
    _require(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({type(err).__name__}: {err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_DTYPES:
        raise DataError(f"{path}: IDX element type 0x{dtype:02x} is not supported (expected 0x08, unsigned byte)")
    if ndim not in (1, 3):
        raise DataError(f"{path}: IDX file has {ndim} dimensions, expected 1 (labels) or 3 (images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path}: IDX images are {shape[1]}x{shape[2]}, expected 28x28")
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header promises {expected} bytes for shape {shape}, file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


# ---------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    return Path(os.environ.get("KMNIST_CACHE") or Path.home() / ".cache" / "kmnist")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_entry(path: Path, cache_dir: Path) -> tuple[Path, dict]:
    stat = path.stat()
    source = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _file_digest(path), "format": CACHE_FORMAT}
    return cache_dir / f"{path.name}-{source['sha256'][:20]}", source


def _load_cached(entry: Path, source: dict) -> DigitTable | None:
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


def _store_cached(entry: Path, source: dict, table: DigitTable) -> None:
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
        shutil.rmtree(locals().get("staging", entry.parent / ".none"), ignore_errors=True)  # a read-only cache only costs speed


def _require(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: file not found; {DOWNLOAD_HINT}")


def read_digits(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> DigitTable:
    """Read a Kaggle-layout CSV (`.csv` or `.csv.gz`), validated, through the uint8 cache."""
    path = Path(path)
    _require(path)
    if not use_cache:
        return _parse_csv(path)
    entry, source = _cache_entry(path, Path(cache_dir) if cache_dir else default_cache_dir())
    table = _load_cached(entry, source)
    if table is None:
        table = _parse_csv(path)
        _store_cached(entry, source, table)
    return table


def atomic_write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a CSV (gzip-compressed for `.gz`) through a temporary file and rename it into place."""
    compression = "gzip" if Path(path).suffix == ".gz" else None
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False, compression=compression))


def table_to_frame(table: DigitTable) -> pd.DataFrame:
    """The Kaggle layout of a table: id and/or label columns, then pixel0..pixel783."""
    pixels = pd.DataFrame(table.images.reshape(len(table), N_PIXELS), columns=PIXEL_COLUMNS)
    front = {}
    if table.ids is not None:
        front["id"] = table.ids
    if table.labels is not None:
        front["label"] = table.labels
    return pd.concat([pd.DataFrame(front), pixels], axis=1) if front else pixels
