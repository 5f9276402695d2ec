"""Readers, validation errors and the parse cache, on real files the tests write."""

from __future__ import annotations

import gzip
import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from kmnist.data.idx import read_idx
from kmnist.data.io import PIXEL_COLUMNS, DigitTable, read_digits, table_to_frame
from kmnist.errors import DataError
from kmnist.utils.atomic import atomic_write_csv


def make_table(n=12, labels=True, ids=False, seed=0) -> DigitTable:
    rng = np.random.default_rng(seed)
    return DigitTable(
        images=rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
        labels=(np.arange(n) % 10) if labels else None,
        ids=(np.arange(n) * 3 + 1) if ids else None,
    )


def write(tmp_path, frame: pd.DataFrame, name="x.csv") -> os.PathLike:
    path = tmp_path / name
    frame.to_csv(path, index=False, compression="gzip" if name.endswith(".gz") else None)
    return path


@pytest.mark.parametrize("name", ["train.csv", "train.csv.gz"])
@pytest.mark.parametrize("labels,ids", [(True, False), (False, True), (True, True)])
def test_csv_round_trip(tmp_path, name, labels, ids):
    table = make_table(labels=labels, ids=ids)
    path = write(tmp_path, table_to_frame(table), name)
    got = read_digits(path, use_cache=False)
    np.testing.assert_array_equal(got.images, table.images)
    assert (got.labels is None) == (not labels) and (got.ids is None) == (not ids)
    if labels:
        np.testing.assert_array_equal(got.labels, table.labels)
    if ids:
        np.testing.assert_array_equal(got.ids, table.ids)


def test_pixel_layout_is_row_major(tmp_path):
    frame = table_to_frame(DigitTable(images=np.zeros((1, 28, 28), np.uint8), labels=np.array([3])))
    frame.loc[0, "pixel30"] = 200  # row 1, column 2
    image = read_digits(write(tmp_path, frame), use_cache=False).images[0]
    assert image[1, 2] == 200 and image.sum() == 200


def bad_frame(mutate):
    frame = table_to_frame(make_table(n=5))
    return mutate(frame)


def _set(frame, row, col, value):
    frame = frame.astype(object)
    frame.loc[row, col] = value
    return frame


@pytest.mark.parametrize(
    "mutate,needles",
    [
        (lambda f: f.drop(columns=["pixel783"]), ["784", "missing"]),
        (lambda f: f.assign(extra=1), ["extra"]),
        (lambda f: f.rename(columns={"pixel10": "px10"}), ["column 12", "px10", "pixel10"]),
        (lambda f: _set(f, 2, "pixel5", 300), ["line 4", "pixel5", "0..255"]),
        (lambda f: _set(f, 1, "pixel7", -1), ["line 3", "pixel7", "0..255"]),
        (lambda f: _set(f, 3, "pixel9", "abc"), ["line 5", "pixel9", "not a number"]),
        (lambda f: _set(f, 0, "pixel1", 1.5), ["line 2", "pixel1", "not an integer"]),
        (lambda f: _set(f, 4, "pixel2", np.nan), ["line 6", "pixel2", "NaN"]),
        (lambda f: _set(f, 2, "label", 10), ["line 4", "label", "0..9"]),
        (lambda f: _set(f, 2, "pixel5", np.inf), ["line 4", "pixel5", "value inf is outside 0..255"]),
        (lambda f: _set(f, 1, "pixel3", 256.0), ["line 3", "pixel3", "value 256 is outside"]),
    ],
)
def test_csv_errors_name_file_line_and_column(tmp_path, mutate, needles):
    path = write(tmp_path, bad_frame(mutate))
    with pytest.raises(DataError) as err:
        read_digits(path, use_cache=False)
    message = str(err.value)
    assert str(path) in message and "\n" not in message and "np." not in message
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("sep,name", [(";", "semicolons"), ("\t", "tabs")])
def test_another_separator_is_named_and_the_header_is_not_quoted_whole(tmp_path, sep, name):
    path = tmp_path / "semi.csv"
    table_to_frame(make_table(n=3)).to_csv(path, index=False, sep=sep)
    with pytest.raises(DataError) as err:
        read_digits(path, use_cache=False)
    message = str(err.value)
    assert name in message and "comma-separated" in message and str(path) in message
    assert len(message) < 300 + len(str(path)), message


def test_duplicate_ids(tmp_path):
    frame = table_to_frame(make_table(n=4, labels=False, ids=True))
    frame.loc[3, "id"] = frame.loc[1, "id"]
    with pytest.raises(DataError, match=r"line 5, column id: duplicate id"):
        read_digits(write(tmp_path, frame), use_cache=False)


def test_empty_and_header_only_and_missing(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_digits(empty, use_cache=False)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(["label", *PIXEL_COLUMNS]) + "\n")
    with pytest.raises(DataError, match="no data rows"):
        read_digits(header_only, use_cache=False)
    with pytest.raises(DataError, match=r"not found.*KMNIST_DATA.*kmnist.data.download"):
        read_digits(tmp_path / "nope.csv.gz", use_cache=False)


def test_truncated_gzip(tmp_path):
    path = write(tmp_path, table_to_frame(make_table(n=50)), "t.csv.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t.csv.gz"):
        read_digits(path, use_cache=False)


# ---------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray, magic_type=0x08) -> bytes:
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images = make_table(n=7).images
    raw = idx_bytes(images)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    np.testing.assert_array_equal(read_idx(path), images)
    labels = np.arange(7, dtype=np.uint8)
    (tmp_path / "y.idx").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(tmp_path / "y.idx"), labels)


@pytest.mark.parametrize(
    "raw,needle",
    [
        (b"\x01\x02\x08\x03" + b"\0" * 12, "bad magic"),
        (idx_bytes(np.zeros((2, 27, 28))), "27x28"),
        (idx_bytes(np.zeros((3, 28, 28)))[:-5], "promises"),
        (idx_bytes(np.zeros((2, 2))), "2 dimensions"),
    ],
)
def test_idx_errors(tmp_path, raw, needle):
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=needle):
        read_idx(path)


# ---------------------------------------------------------------- cache


def test_cache_hit_stale_and_corrupt(tmp_path):
    cache = tmp_path / "cache"
    table = make_table(n=20)
    path = write(tmp_path, table_to_frame(table), "train.csv.gz")

    read_digits(path, cache_dir=cache)
    entries = list(cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "images.npy").is_file()
    # Hit: the parsed arrays come from the cache, not the CSV. Prove it by planting a marker.
    planted = np.load(entries[0] / "images.npy")
    planted[0, 0, 0] = 77
    np.save(entries[0] / "images.npy", planted)
    assert read_digits(path, cache_dir=cache).images[0, 0, 0] == 77

    # Stale: a changed source is parsed again, never served from the old entry.
    changed = make_table(n=20, seed=5)
    time.sleep(0.01)
    write(tmp_path, table_to_frame(changed), "train.csv.gz")
    np.testing.assert_array_equal(read_digits(path, cache_dir=cache).images, changed.images)

    # Corrupt: a damaged entry is rebuilt from the source.
    entry = next(
        e
        for e in cache.iterdir()
        if json.loads((e / "meta.json").read_text())["shape"][0] == 20
        and np.array_equal(np.load(e / "images.npy")[:1], changed.images[:1])
    )
    (entry / "images.npy").write_bytes(b"garbage")
    np.testing.assert_array_equal(read_digits(path, cache_dir=cache).images, changed.images)
    np.testing.assert_array_equal(np.load(entry / "images.npy"), changed.images)


def test_unwritable_cache_still_reads(tmp_path):
    path = write(tmp_path, table_to_frame(make_table(n=3)), "a.csv")
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    assert len(read_digits(path, cache_dir=blocker / "sub")) == 3


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")

    class Boom(pd.DataFrame):
        def to_csv(self, *a, **k):
            with open(a[0], "w") as fh:
                fh.write("half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write_csv(Boom({"a": [1]}), target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_errors_in_later_blocks_name_the_right_line(tmp_path):
    from kmnist.data import io

    frame = table_to_frame(make_table(n=10)).astype(object)
    frame.loc[7, "pixel3"] = 999
    path = write(tmp_path, frame)
    with pytest.raises(DataError, match=r"line 9, column pixel3"):
        io._parse_csv(path, chunk_rows=3)
    good = write(tmp_path, table_to_frame(make_table(n=10, ids=True)), "good.csv")
    np.testing.assert_array_equal(
        io._parse_csv(good, chunk_rows=3).images, read_digits(good, use_cache=False).images
    )
    dup = table_to_frame(make_table(n=10, ids=True))
    dup.loc[8, "id"] = dup.loc[1, "id"]  # duplicates across blocks are caught too
    with pytest.raises(DataError, match=r"line 10, column id: duplicate"):
        io._parse_csv(write(tmp_path, dup, "dup.csv"), chunk_rows=3)


@pytest.mark.parametrize("name", ["blank.csv", "blank.csv.gz"])
def test_blank_lines_are_skipped_and_errors_still_name_the_file_line(tmp_path, name):
    from kmnist.data import io

    def write_lines(lines, path):
        text = "\n".join(lines) + "\n"
        with gzip.open(path, "wt") if path.name.endswith(".gz") else open(path, "w") as fh:
            fh.write(text)
        return path

    lines = table_to_frame(make_table(n=6, ids=True)).to_csv(index=False).splitlines()  # id,label,pixel0..
    lines[1:1] = ["", "   "]  # two blank lines after the header: data row r is on file line r + 4
    assert (
        len(io._parse_csv(write_lines(lines, tmp_path / name), chunk_rows=2)) == 6
    )  # skipped, as pandas does

    bad = lines.copy()
    cells = bad[7].split(",")  # data row 4
    cells[10] = "abc"  # its pixel8
    bad[7] = ",".join(cells)
    with pytest.raises(DataError, match=r"line 8, column pixel8: not a number"):
        io._parse_csv(write_lines(bad, tmp_path / ("bad_" + name)), chunk_rows=2)

    dup = lines.copy()
    dup[8] = dup[3].split(",")[0] + dup[8][dup[8].index(",") :]  # data row 5 takes row 0's id
    with pytest.raises(DataError, match=r"line 9, column id: duplicate"):
        io._parse_csv(write_lines(dup, tmp_path / ("dup_" + name)), chunk_rows=2)


def test_file_too_large_for_memory_is_refused_with_an_estimate(tmp_path, monkeypatch):
    from kmnist.data import io

    monkeypatch.setattr(io, "_available_memory", lambda: 20_000)  # as if this machine had 20 kB free
    path = write(tmp_path, table_to_frame(make_table(n=40)))
    with pytest.raises(DataError, match=r"rows need over .* GiB .* split the file"):
        io._parse_csv(path, chunk_rows=8)


def test_windows_line_endings_and_utf8_bom_are_read(tmp_path):
    table = make_table(n=4)
    text = table_to_frame(table).to_csv(index=False, lineterminator="\r\n")
    path = tmp_path / "win.csv"
    path.write_bytes("\ufeff".encode() + text.encode())
    got = read_digits(path, use_cache=False)
    np.testing.assert_array_equal(got.images, table.images)
    np.testing.assert_array_equal(got.labels, table.labels)


def test_a_field_too_many_on_every_row_is_named_not_shifted(tmp_path):
    """pandas made the first column the index when every row had one field more than the header:
    labels came from pixel0 and every image moved a pixel, without a word."""
    table = make_table(n=6)
    lines = write(tmp_path, table_to_frame(table)).read_text().splitlines()
    extra = tmp_path / "extra.csv"
    extra.write_text("\n".join([lines[0], *(line + ",0" for line in lines[1:])]) + "\n")
    with pytest.raises(DataError, match=r"extra.csv: line 2 has 786 fields, the header 785$"):
        read_digits(extra, use_cache=False)
    # A trailing comma on every row is read as the row it is.
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("\n".join([lines[0], *(line + "," for line in lines[1:])]) + "\n")
    read = read_digits(trailing, use_cache=False)
    assert np.array_equal(read.labels, table.labels) and np.array_equal(read.images, table.images)


def test_large_ids_are_kept_exactly_or_refused(tmp_path):
    """Ids went through the value matrix: above int64 they wrapped negative, and beside a column needing
    float coercion (a pixel written 3.0) ids above 2**53 were rounded."""
    header = "id," + ",".join(PIXEL_COLUMNS)
    pixels = ",".join(["0"] * 784)
    exact = tmp_path / "exact.csv"
    exact.write_text(f"{header}\n9007199254740993,3.0{pixels[1:]}\n5,{pixels}\n")
    assert read_digits(exact, use_cache=False).ids.tolist() == [9007199254740993, 5]
    wraps = tmp_path / "wraps.csv"
    wraps.write_text(f"{header}\n1,{pixels}\n10000000000000000000,{pixels}\n")
    with pytest.raises(
        DataError, match=r"wraps.csv: line 3, column id: 10000000000000000000 is too large for an id"
    ):
        read_digits(wraps, use_cache=False)
    decimals = (
        tmp_path / "decimals.csv"
    )  # 2**53 + 1 written as a decimal reads as 2**53: refused, not rounded
    decimals.write_text(f"{header}\n1.0,{pixels}\n9007199254740993.0,{pixels}\n")
    with pytest.raises(
        DataError,
        match=r"decimals.csv: line 3, column id: .* is too large for an id \(ids written as decimals",
    ):
        read_digits(decimals, use_cache=False)


def test_damaged_gzip_bytes_are_one_error_naming_the_file(tmp_path):
    path = write(tmp_path, table_to_frame(make_table()), "train.csv.gz")
    raw = path.read_bytes()
    start = raw.index(b"\0", 10) + 1 if raw[3] & 0x08 else 10  # past the header and its file name (FNAME)
    path.write_bytes(
        raw[:start] + bytes([raw[start] ^ 0xFF]) + raw[start + 1 :]
    )  # the first deflate block: zlib.error, not OSError
    with pytest.raises(DataError, match=r"train.csv.gz: cannot be read as CSV \(error: "):
        read_digits(path, use_cache=False)


def test_the_same_table_gives_the_same_gzip_bytes(tmp_path):
    """Pseudo-label files and the downloader's CSVs: byte-identical runs, not only the same rows."""
    frame = table_to_frame(make_table())
    first = atomic_write_csv(frame, tmp_path / "a.csv.gz").read_bytes()
    time.sleep(1.1)  # gzip's header holds seconds
    second = atomic_write_csv(frame, tmp_path / "a.csv.gz").read_bytes()
    assert first == second and b".tmp" not in first[:64]
    assert (
        read_digits(tmp_path / "a.csv.gz", use_cache=False).images.tobytes() == make_table().images.tobytes()
    )
