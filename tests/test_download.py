"""kmnist.data.download against a real HTTP server on 127.0.0.1 serving small, made-up IDX files."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import struct
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kmnist.data.download import LOCK_NAME, download, main
from kmnist.data.io import read_digits
from kmnist.data.release import FILES
from kmnist.errors import DataError
from kmnist.utils.locks import exclusive_lock
from kmnist.utils.network import reachable

COUNTS = {"train": 30, "test": 20, "dig": 20}
TRAIN_IMAGES = FILES["train"][0]
TEST_LABELS = FILES["test"][1]


def idx_gz(array: np.ndarray) -> bytes:
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus faults the test arms per file name: one 503, or one dropped connection."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        state = self.server.state
        name = self.path.rsplit("/", 1)[-1]
        state.hits[name] += 1
        if name in state.fail_once:
            state.fail_once.discard(name)
            self.send_error(503)
        elif name in state.stall:  # half a file, then nothing: a download to interrupt
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(bytes(1000))
            self.wfile.flush()
            time.sleep(30)
        elif name in state.limit_once:  # rate-limited, as GitHub's raw files can be
            state.limit_once.discard(name)
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif name in state.drop_once:
            state.drop_once.discard(name)
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data) + 1000))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    httpd.state = SimpleNamespace(
        hits=Counter(), fail_once=set(), drop_once=set(), limit_once=set(), stall=set()
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )  # quick shutdown
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}/", root=root, state=httpd.state)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def dataset(server):
    """Writes the six files into the server's folder; `checksums` skips the train images, as upstream."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, (images, labels) in FILES.items():
        arrays[images] = rng.integers(0, 256, (COUNTS[split], 28, 28), dtype=np.uint8)
        arrays[labels] = rng.integers(0, 10, COUNTS[split], dtype=np.uint8)
    for name, array in arrays.items():
        (server.root / name).write_bytes(idx_gz(array))
    checksums = {
        name: hashlib.sha256((server.root / name).read_bytes()).hexdigest()
        for name in arrays
        if name != TRAIN_IMAGES
    }
    return SimpleNamespace(arrays=arrays, checksums=checksums)


def fetch(server, dataset, dest, **kwargs):
    options = dict(
        base_url=server.url, backoff=0, checksums=dataset.checksums, expected_counts=COUNTS, progress=False
    )
    return download(dest, **{**options, **kwargs})


def leftovers(dest: Path) -> list[str]:
    """Hidden files a download left, but its lock file, which stays by design (kmnist/utils/locks.py)."""
    return sorted(p.name for p in dest.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME)


def test_download_converts_to_kaggle_layout(server, dataset, tmp_path):
    dest = fetch(server, dataset, tmp_path / "out")
    a = dataset.arrays

    train = read_digits(dest / "train.csv.gz", use_cache=False)
    np.testing.assert_array_equal(train.images, a[FILES["train"][0]])
    np.testing.assert_array_equal(train.labels, a[FILES["train"][1]])
    assert train.ids is None
    for split in ("test", "dig"):
        images, labels = a[FILES[split][0]], a[FILES[split][1]]
        plain = read_digits(dest / f"{split}.csv.gz", use_cache=False)
        np.testing.assert_array_equal(plain.images, images)
        np.testing.assert_array_equal(plain.ids, np.arange(COUNTS[split]))
        assert plain.labels is None
        labelled = read_digits(dest / f"{split}_labelled.csv.gz", use_cache=False)
        np.testing.assert_array_equal(labelled.images, images)
        np.testing.assert_array_equal(labelled.labels, labels)
        np.testing.assert_array_equal(labelled.ids, np.arange(COUNTS[split]))
        assert list(pd.read_csv(dest / f"{split}_labelled.csv.gz", nrows=0).columns[:3]) == [
            "id",
            "label",
            "pixel0",
        ]

    submission = pd.read_csv(dest / "sample_submission.csv")
    assert list(submission.columns) == ["id", "label"]
    assert submission["id"].tolist() == list(range(COUNTS["test"])) and (submission["label"] == 0).all()
    provenance = (dest / "PROVENANCE.md").read_text()
    assert (
        "arXiv:1908.01242" in provenance
        and "CC BY-SA 4.0" in provenance
        and "Vinay Uday Prabhu" in provenance
    )
    assert leftovers(dest) == []


def test_verified_files_are_skipped_unless_forced(server, dataset, tmp_path):
    dest = fetch(server, dataset, tmp_path / "out")
    assert sum(server.state.hits.values()) == 6
    fetch(server, dataset, dest)
    assert sum(server.state.hits.values()) == 6
    (dest / TEST_LABELS).write_bytes(b"damaged")  # a bad local copy is fetched again
    fetch(server, dataset, dest)
    assert server.state.hits[TEST_LABELS] == 2 and sum(server.state.hits.values()) == 7
    fetch(server, dataset, dest, force=True)
    assert sum(server.state.hits.values()) == 13


def test_checksum_mismatch_is_retried_then_fails(server, dataset, tmp_path):
    served = server.root / TEST_LABELS
    served.write_bytes(idx_gz(np.zeros(COUNTS["test"], dtype=np.uint8)))  # valid IDX, wrong content
    actual = hashlib.sha256(served.read_bytes()).hexdigest()
    dest = tmp_path / "out"
    with pytest.raises(DataError) as info:
        fetch(server, dataset, dest, retries=2)
    message = str(info.value)
    assert TEST_LABELS in message and dataset.checksums[TEST_LABELS] in message and actual in message
    assert server.state.hits[TEST_LABELS] == 3
    assert not (dest / TEST_LABELS).exists()
    assert not (dest / "train.csv.gz").exists()
    assert leftovers(dest) == []


@pytest.mark.parametrize("retries", [1, 0])
def test_dropped_connection(server, dataset, tmp_path, retries):
    name = FILES["test"][0]
    server.state.drop_once.add(name)
    dest = tmp_path / "out"
    if retries:
        fetch(server, dataset, dest, retries=retries, progress=True)
        np.testing.assert_array_equal(
            read_digits(dest / "test.csv.gz", use_cache=False).images, dataset.arrays[name]
        )
    else:
        with pytest.raises(DataError, match="connection closed after"):
            fetch(server, dataset, dest, retries=retries)
        assert not (dest / name).exists()
    assert server.state.hits[name] == (2 if retries else 1)
    assert leftovers(dest) == []


def test_server_error_is_retried(server, dataset, tmp_path):
    server.state.fail_once.add(TRAIN_IMAGES)
    dest = fetch(server, dataset, tmp_path / "out", retries=1)
    assert server.state.hits[TRAIN_IMAGES] == 2
    assert (dest / "train.csv.gz").is_file()


def test_404_fails_at_once_naming_the_url(server, dataset, tmp_path):
    (server.root / TEST_LABELS).unlink()
    with pytest.raises(DataError) as info:
        fetch(
            server, dataset, tmp_path / "out", retries=2, backoff=1
        )  # a retry would show in hits (and take seconds)
    assert f"{server.url}{TEST_LABELS}" in str(info.value) and "404" in str(info.value)
    assert server.state.hits[TEST_LABELS] == 1


@pytest.mark.parametrize(
    "served, problem",
    [
        (gzip.compress(b"\x00\x00\x09\x03" + bytes(100), mtime=0), "element type 0x09"),
        (gzip.compress(b"<html>not found</html>", mtime=0), "not an IDX file"),
        (
            idx_gz(np.zeros((COUNTS["train"] + 1, 28, 28), dtype=np.uint8)),
            r"shape \(31, 28, 28\), expected \(30, 28, 28\)",
        ),
    ],
    ids=["bad-element-type", "not-idx", "wrong-count"],
)
def test_bad_train_images_raise_data_error(server, dataset, tmp_path, served, problem):
    (server.root / TRAIN_IMAGES).write_bytes(served)
    dest = tmp_path / "out"
    with pytest.raises(DataError, match=problem) as info:
        fetch(server, dataset, dest, retries=1)
    assert str(info.value).startswith(TRAIN_IMAGES)
    assert ".part" not in str(info.value)  # names the published file, not the temporary one
    assert not (dest / TRAIN_IMAGES).exists() and leftovers(dest) == []


def test_cli_reports_one_line_error(server, tmp_path, capsys):
    code = main(["--dest", str(tmp_path / "out"), "--base-url", server.url + "nowhere/", "--retries", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert f"{server.url}nowhere/{TRAIN_IMAGES}" in err


def test_cli_dest_defaults_to_kmnist_data(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KMNIST_DATA", str(tmp_path / "from_env"))
    assert main(["--base-url", server.url, "--retries", "0"]) == 1  # nothing served
    assert (tmp_path / "from_env").is_dir()


def test_network_reachable(server):
    assert reachable(server.url, timeout=2)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    assert not reachable(closed, timeout=2)
    assert not reachable("not a url")


def test_a_rate_limit_is_waited_out_and_retried(server, dataset, tmp_path):
    server.state.limit_once.add(TEST_LABELS)
    dest = fetch(server, dataset, tmp_path / "out", retries=1)
    assert server.state.hits[TEST_LABELS] == 2 and (dest / "test.csv.gz").is_file()


def test_damaged_gzip_bytes_are_fetched_again_then_named(server, dataset, tmp_path):
    """Damaged compressed bytes raise zlib.error, not OSError: it was a traceback after one GET."""
    good = (server.root / TRAIN_IMAGES).read_bytes()
    damaged = (
        good[:10] + bytes([good[10] ^ 0xFF]) + good[11:]
    )  # the first deflate block header: zlib.error "invalid ..."
    (server.root / TRAIN_IMAGES).write_bytes(
        damaged
    )  # the train images have no published hash: only reading finds it
    dest = tmp_path / "out"
    with pytest.raises(
        DataError, match=rf"^{TRAIN_IMAGES}: cannot be read \(error: .*\) \(gave up after 2 attempts\)"
    ):
        fetch(server, dataset, dest, retries=1)
    assert server.state.hits[TRAIN_IMAGES] == 2 and leftovers(dest) == []
    # A damaged local copy is fetched again, not a crash.
    (server.root / TRAIN_IMAGES).write_bytes(good)
    (dest / TRAIN_IMAGES).write_bytes(damaged)
    fetch(server, dataset, dest)
    assert (dest / TRAIN_IMAGES).read_bytes() == good and server.state.hits[TRAIN_IMAGES] == 3


def test_partial_files_of_a_killed_run_are_removed(server, dataset, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / f".{TRAIN_IMAGES}.abc123.part.gz").write_bytes(b"half a file")  # SIGTERM/SIGKILL left it
    fetch(server, dataset, dest)
    assert leftovers(dest) == []


def test_base_url_may_be_a_folder_and_anything_else_is_one_line(server, dataset, tmp_path):
    dest = fetch(server, dataset, tmp_path / "out", base_url=str(server.root))
    assert (dest / "train.csv.gz").is_file() and sum(
        server.state.hits.values()
    ) == 0  # read from the folder, not the server
    for bad in ("127.0.0.1:8765/", "ftp://example.org/"):
        with pytest.raises(
            DataError, match=r"^--base-url .*: expected an http\(s\):// or file:// URL, or a folder"
        ):
            fetch(server, dataset, tmp_path / "out2", base_url=bad)


def test_sigterm_mid_download_keeps_no_partial_file(server, dataset, tmp_path):
    import signal
    import subprocess
    import sys

    server.state.stall.add(TRAIN_IMAGES)
    dest = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmnist.data.download", "--dest", str(dest), "--base-url", server.url],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (
        not (dest.is_dir() and leftovers(dest)) and time.monotonic() < deadline
    ):  # the .part file of the stalled download
        time.sleep(0.05)
    assert leftovers(dest), "the download never started"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143 and leftovers(dest) == []


def test_a_second_download_into_the_folder_waits_for_the_first(server, dataset, tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    partial_file = dest / f".{TRAIN_IMAGES}.abc123.part.gz"  # the first download's file in progress
    with exclusive_lock(dest / LOCK_NAME):  # the first download, still running
        partial_file.write_bytes(b"half a file")
        second = threading.Thread(target=fetch, args=(server, dataset, dest))
        second.start()
        second.join(timeout=1.0)
        assert second.is_alive() and partial_file.is_file() and sum(server.state.hits.values()) == 0
    second.join(timeout=60)
    assert not second.is_alive() and (dest / "train.csv.gz").is_file() and leftovers(dest) == []


def test_a_verified_folder_that_cannot_be_written_is_still_checked(server, dataset, tmp_path, monkeypatch):
    """A shared, read-only data folder already downloaded: the check passes as before the lock, which
    it cannot create there (EROFS; EACCES for a folder of another user's)."""
    import errno
    import os

    dest = fetch(server, dataset, tmp_path / "out")
    (dest / LOCK_NAME).unlink()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).endswith(LOCK_NAME):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert (
        fetch(server, dataset, dest) == dest and sum(server.state.hits.values()) == 6
    )  # the first download's only
