"""A file that is not a checkpoint, given where one is expected (predict.py's ckpt=, train.py's
ckpt_path=, export, loss.distill.teachers), is named in one line for what it is, and torch's advice
to retry with `weights_only=False` (a code-execution risk for a file from elsewhere) never shows."""

from __future__ import annotations

import argparse
import gzip
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from kmnist.engine.inference import load_checkpoint
from kmnist.engine.resumable import check_resume_checkpoint
from kmnist.errors import CheckpointError


class _Payload:
    """Unpickling it creates a marker file: the proof that a load ran code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")


# (file name, how to write it, what the one line must say)
FILES = [
    ("data.ckpt", lambda p: p.write_text("label,pixel0,pixel1\n3,0,255\n"), "it is a CSV file"),
    ("notes.ckpt", lambda p: p.write_text("model: cnn\nepochs: 3\n"), "it is a text file (first line"),
    ("empty.ckpt", lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    (
        "data.csv.gz",
        lambda p: p.write_bytes(gzip.compress(b"id,pixel0\n1,0\n")),
        "it is a gzip-compressed CSV file",
    ),
    ("dict.pkl", lambda p: p.write_bytes(pickle.dumps({"a": 1})), "refused: it is a Python pickle"),
    ("archive.ckpt", _zip, "it is a zip archive of other files (notes/readme.txt), not a torch checkpoint"),
    ("cut.ckpt", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(60)), "a truncated or damaged zip archive"),
    ("random.ckpt", lambda p: p.write_bytes(bytes(range(256))), "binary data starting 00 01 02"),
    (
        "objects.ckpt",
        lambda p: torch.save({"args": argparse.Namespace(lr=0.1)}, p),
        "refused: it holds Python objects (argparse.Namespace)",
    ),
]


@pytest.mark.parametrize("name, write, said", FILES, ids=[f[0] for f in FILES])
def test_a_file_that_is_no_checkpoint_is_named_for_what_it_is(tmp_path, compose_train, name, write, said):
    path = tmp_path / name
    write(path)
    with pytest.raises(CheckpointError) as predicted:
        load_checkpoint(path)
    with pytest.raises(CheckpointError) as resumed:
        check_resume_checkpoint(str(path), compose_train("model=cnn"))
    for err, prefix in ((predicted, f"{path}: "), (resumed, f"ckpt_path={path}: ")):
        message = str(err.value)
        assert message.startswith(prefix) and said in message, message
        assert "\n" not in message and "weights_only" not in message


def test_a_pickle_is_refused_unopened_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(_Payload(str(marker))))
    torch.save({"state_dict": {}, "evil": _Payload(str(marker))}, tmp_path / "zipped.ckpt")
    with pytest.raises(CheckpointError, match=r"plain\.pkl: refused: it is a Python pickle"):
        load_checkpoint(tmp_path / "plain.pkl")
    with pytest.raises(
        CheckpointError, match=r"zipped\.ckpt: refused: it holds Python objects \(\S+\) beside"
    ):
        load_checkpoint(tmp_path / "zipped.ckpt")
    assert not marker.exists()


def test_torch_files_that_are_no_kmnist_checkpoint_still_load_and_are_named(tmp_path):
    """The sniffing lets torch.save's output through, old (non-zip) format included."""
    torch.save({"a": torch.zeros(2)}, tmp_path / "new.pt")
    torch.save({"a": torch.zeros(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    for name in ("new.pt", "old.pt"):
        with pytest.raises(CheckpointError, match=rf"{name}: not a kmnist checkpoint"):
            load_checkpoint(tmp_path / name)


def test_predict_names_a_csv_given_as_checkpoint_in_one_line(tmp_path, data_dir):
    done = run_cli(
        "predict.py",
        f"ckpt={data_dir / 'test.csv.gz'}",
        f"input={data_dir / 'test.csv.gz'}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()  # one line, Hydra's log and all
    assert line.startswith(
        f"error: {data_dir / 'test.csv.gz'}: cannot be read as a checkpoint: it is a gzip-compressed "
        "CSV file (first line 'id,pixel0,pixel1,"
    )
    assert "weights_only" not in done.stderr and "Traceback" not in done.stderr
