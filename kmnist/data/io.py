"""The reader for the Kaggle CSV layout (`label`/`id`, pixel0..pixel783), validated, through the
uint8 cache (kmnist.data.cache): the header is checked by kmnist.data.csv_header, each block of
rows by kmnist.data.csv_rows, and the file as a whole (size, ragged rows, duplicate ids) here.

Every problem with an input raises `DataError` with one line naming the file and, where it
applies, the line and column at fault.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kmnist.data.cache import cache_entry, default_cache_dir, load_cached, store_cached
from kmnist.data.csv_header import check_header, csv_columns
from kmnist.data.csv_rows import file_line, parse_chunk, ragged_row
from kmnist.data.table import N_PIXELS, PIXEL_COLUMNS, DigitTable
from kmnist.errors import DataError

if TYPE_CHECKING:  # pandas loads only when a CSV is parsed or written: a cached read never needs it
    import pandas as pd

CHUNK_ROWS = 20_000  # rows parsed at a time: ~125 MB of int64 per block
DOWNLOAD_HINT = (
    "point KMNIST_DATA at the folder holding it "
    "(or paths.data_dir=, or predict.py's input=), "
    "or fetch the data with `python -m kmnist.data.download`"
)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


def _parse_csv(path: Path, chunk_rows: int = CHUNK_ROWS) -> DigitTable:
    """Stream the CSV in blocks of rows: memory stays near the uint8 result (784 bytes a row),
    and a file too large for memory is refused with an estimate instead of the process being killed."""
    import pandas as pd

    meta = check_header(path, csv_columns(path))
    available = _available_memory()
    chunks: list[DigitTable] = []
    rows = 0
    try:
        with warnings.catch_warnings():
            # index_col=False: rows with one field more than the header (a trailing comma) would
            # otherwise make the first column the index and shift every value one column left,
            # silently; now pandas warns.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            for frame in pd.read_csv(path, chunksize=chunk_rows, low_memory=False, index_col=False):
                frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
                chunks.append(parse_chunk(path, frame, meta, first_row=rows))
                rows += len(frame)
                if available is not None and rows * (N_PIXELS + 16) > available // 2:
                    raise DataError(
                        f"{path}: more than {rows:,} rows need over "
                        f"{rows * (N_PIXELS + 16) / 2**30:.1f} GiB as uint8, "
                        f"more than half the {available / 2**30:.1f} GiB of memory available; split the file"
                    )
    except pd.errors.ParserWarning:
        raise ragged_row(path, len(meta) + N_PIXELS) from None
    except (
        OSError,
        EOFError,
        gzip.BadGzipFile,
        zlib.error,
        UnicodeDecodeError,
        pd.errors.ParserError,
    ) as err:  # zlib: damaged bytes
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
            raise DataError(
                f"{path}: line {file_line(path, row)}, column id: duplicate id {ids[row]} "
                "(ids must be unique)"
            )
        table.ids = ids
    return table


def require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: file not found; {DOWNLOAD_HINT}")


def read_digits(
    path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, use_cache: bool = True
) -> DigitTable:
    """Read a Kaggle-layout CSV (`.csv` or `.csv.gz`), validated, through the uint8 cache."""
    path = Path(path)
    require_file(path)
    if not use_cache:
        return _parse_csv(path)
    entry, source = cache_entry(path, Path(cache_dir) if cache_dir else default_cache_dir())
    table = load_cached(entry, source)
    if table is None:
        table = _parse_csv(path)
        store_cached(entry, source, table)
    return table


def table_to_frame(table: DigitTable) -> pd.DataFrame:
    """The Kaggle layout of a table: id and/or label columns, then pixel0..pixel783."""
    import pandas as pd

    pixels = pd.DataFrame(table.images.reshape(len(table), N_PIXELS), columns=PIXEL_COLUMNS)
    front = {}
    if table.ids is not None:
        front["id"] = table.ids
    if table.labels is not None:
        front["label"] = table.labels
    return pd.concat([pd.DataFrame(front), pixels], axis=1) if front else pixels
