"""The reader for the Kaggle CSV layout (`label`/`id`, pixel0..pixel783), validated, through the
uint8 cache (kmnist.data.cache).

Every problem with an input raises `DataError` with one line naming the file and, where it
applies, the line and column at fault.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from kmnist.data.cache import cache_entry, default_cache_dir, load_cached, store_cached
from kmnist.data.table import IMAGE_SIDE, N_PIXELS, PIXEL_COLUMNS, DigitTable  # noqa: F401  (the layout, read from here too)
from kmnist.errors import DataError

META_COLUMNS = ("id", "label")
CHUNK_ROWS = 20_000  # rows parsed at a time: ~125 MB of int64 per block
DOWNLOAD_HINT = (
    "point KMNIST_DATA at the folder holding it (or train.py's data.dir=, predict.py's input=, the pipeline's data_dir=), "
    "or fetch the data with `python -m kmnist.data.download`"
)


# ---------------------------------------------------------------- CSV


def _csv_columns(path: Path) -> list[str]:
    try:
        header = pd.read_csv(path, nrows=0)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: the file is empty (expected a header `label,pixel0..pixel783` or `id,pixel0..pixel783`)"
        ) from None
    except (
        OSError,
        EOFError,
        UnicodeDecodeError,
        gzip.BadGzipFile,
        zlib.error,
        pd.errors.ParserError,
    ) as err:
        raise DataError(f"{path}: cannot be read as CSV ({type(err).__name__}: {err})") from None
    return [str(c).strip().lstrip("\ufeff") for c in header.columns]


SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "pipes"}
MAX_SHOWN = 40  # characters of a cell or column name an error quotes


def shown(value) -> str:
    """A value as the user wrote it, short: `inf`, `256`, `'abc'` (numpy scalars without their
    type: `inf`, not `np.float64(inf)`), and a long text cut with `...`."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 4] + "...'"


def _check_separator(path: Path, columns: list[str]) -> None:
    """A CSV written with another separator reads as one huge column: say which separator it uses."""
    if len(columns) != 1:
        return
    for separator, name in SEPARATORS.items():
        if columns[0].count(separator) >= 2:
            raise DataError(
                f"{path}: the header is one column of {len(columns[0]):,} characters separated by {name} "
                f"({shown(columns[0])}); expected a comma-separated CSV (label,pixel0,...,pixel783)"
            )


def _check_header(path: Path, columns: list[str]) -> list[str]:
    """Return the leading meta columns (subset of id/label) or raise naming the first bad column."""
    _check_separator(path, columns)
    meta = []
    for name in columns:
        if name in META_COLUMNS and name not in meta and len(meta) < 2:
            meta.append(name)
        else:
            break
    pixels = columns[len(meta) :]
    if pixels == PIXEL_COLUMNS:
        return meta
    for k, (got, want) in enumerate(zip(pixels, PIXEL_COLUMNS)):
        if got != want:
            raise DataError(
                f"{path}: column {len(meta) + k + 1} is named {shown(got)}, expected {want!r} (layout: optional id/label, then pixel0..pixel783)"
            )
    if len(pixels) < N_PIXELS:
        raise DataError(
            f"{path}: has {len(columns)} columns, expected {len(meta) + N_PIXELS} ({len(meta)} id/label + 784 pixels); pixel{len(pixels)} onwards is missing"
        )
    raise DataError(
        f"{path}: has {len(columns)} columns, expected {len(meta) + N_PIXELS}; unexpected extra column {shown(pixels[N_PIXELS])}"
    )


def _data_lines(path: Path):
    """(file line number, text) of every non-blank line after the header: errors are reported by file
    line, and pandas skips blank lines, so rows and lines part after one. Read again only for an error."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        next(fh, None)  # the header
        yield from ((number, line) for number, line in enumerate(fh, start=2) if line.strip())


def _file_line(path: Path, data_row: int) -> int:
    """The file line (1: the header) of a data row."""
    return next(
        (number for row, (number, _) in enumerate(_data_lines(path)) if row == data_row), data_row + 2
    )


def _ragged_row(path: Path, fields: int) -> DataError:
    """The first line whose field count is not the header's (scanned only when pandas found one)."""
    for number, line in _data_lines(path):
        if (found := line.rstrip("\r\n").count(",") + 1) != fields:
            return DataError(
                f"{path}: line {number} has {found} fields, the header {fields}"
                f"{' (a trailing comma?)' if line.rstrip().endswith(',') else ''}"
            )
    return DataError(f"{path}: a row has another number of fields than the header's {fields}")


def _first_bad(path: Path, frame: pd.DataFrame, bad: np.ndarray, what: str, first_row: int) -> DataError:
    row, col = np.argwhere(bad)[0]
    value = frame.iat[row, col]
    return DataError(
        f"{path}: line {_file_line(path, first_row + row)}, column {frame.columns[col]}: {what} (got {shown(value)})"
    )


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None


def _parse_chunk(path: Path, frame: pd.DataFrame, meta: list[str], first_row: int) -> DigitTable:
    """Validate one block of rows (`first_row`: the data row index of its first row) and convert it."""
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
            raise _first_bad(path, frame, missing, what, first_row)
        fractional = values != np.round(values)
        if fractional.any():
            raise _first_bad(path, frame, fractional, "not an integer", first_row)

    pixels = values[:, len(meta) :]
    out_of_range = (pixels < 0) | (pixels > 255)
    if out_of_range.any():
        row, col = np.argwhere(out_of_range)[0]
        raise DataError(
            f"{path}: line {_file_line(path, first_row + row)}, column pixel{col}: value {shown(frame.iat[row, len(meta) + col])} is outside 0..255"
        )
    table = DigitTable(images=pixels.astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE))
    if "label" in meta:
        labels = values[:, meta.index("label")]
        bad = (labels < 0) | (labels > 9)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{path}: line {_file_line(path, first_row + row)}, column label: {shown(frame['label'].iat[row])} is not a digit 0..9"
            )
        table.labels = labels.astype(np.int64)
    if "id" in meta:
        table.ids = _ids(path, frame["id"], values[:, meta.index("id")], first_row)
    return table


def _ids(path: Path, column: pd.Series, coerced: np.ndarray, first_row: int) -> np.ndarray:
    """Ids exactly as written: from their own integer column (the float matrix rounds ids from 2**53),
    and none beyond int64, which would wrap to negative numbers in the submission."""
    if column.dtype == np.int64:
        return column.to_numpy()
    if column.dtype == np.uint64:
        too_large, why = column.to_numpy() > np.iinfo(np.int64).max, f"at most {np.iinfo(np.int64).max:,}"
    else:  # read as decimals or text: exact below 2**53 only
        too_large, why = (
            np.abs(coerced) >= 2**53,
            f"ids written as decimals, or past 64 bits, must stay below {2**53:,}",
        )
    if too_large.any():
        row = int(np.argmax(too_large))
        raise DataError(
            f"{path}: line {_file_line(path, first_row + row)}, column id: {column.iat[row]} is too large for an id ({why})"
        )
    return coerced.astype(np.int64)


def _parse_csv(path: Path, chunk_rows: int = CHUNK_ROWS) -> DigitTable:
    """Stream the CSV in blocks of rows: memory stays near the uint8 result (784 bytes a row),
    and a file too large for memory is refused with an estimate instead of the process being killed."""
    meta = _check_header(path, _csv_columns(path))
    available = _available_memory()
    chunks: list[DigitTable] = []
    rows = 0
    try:
        with warnings.catch_warnings():
            # index_col=False: rows with one field more than the header (a trailing comma) would otherwise make
            # the first column the index and shift every value one column left, silently; now pandas warns.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            for frame in pd.read_csv(path, chunksize=chunk_rows, low_memory=False, index_col=False):
                frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
                chunks.append(_parse_chunk(path, frame, meta, first_row=rows))
                rows += len(frame)
                if available is not None and rows * (N_PIXELS + 16) > available // 2:
                    raise DataError(
                        f"{path}: more than {rows:,} rows need over {rows * (N_PIXELS + 16) / 2**30:.1f} GiB as uint8, "
                        f"more than half the {available / 2**30:.1f} GiB of memory available; split the file"
                    )
    except pd.errors.ParserWarning:
        raise _ragged_row(path, len(meta) + N_PIXELS) from None
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
                f"{path}: line {_file_line(path, row)}, column id: duplicate id {ids[row]} (ids must be unique)"
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
    pixels = pd.DataFrame(table.images.reshape(len(table), N_PIXELS), columns=PIXEL_COLUMNS)
    front = {}
    if table.ids is not None:
        front["id"] = table.ids
    if table.labels is not None:
        front["label"] = table.labels
    return pd.concat([pd.DataFrame(front), pixels], axis=1) if front else pixels
