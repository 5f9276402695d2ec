"""The one place a checkpoint file is opened (predict.py's ckpt=, train.py's ckpt_path=, export,
loss.distill.teachers): the file is sniffed first, so a CSV, a text file, an empty file, a pickle
or a zip of something else is named in one line, and only what looks like torch.save's output
reaches `torch.load(weights_only=True)`. Torch's own messages advise retrying with
`weights_only=False`, which runs any code a file from elsewhere holds: they are never passed on.
"""

from __future__ import annotations

import codecs
import gzip
import pickle
import re
import zipfile
import zlib
from pathlib import Path

import torch

from kmnist.errors import CheckpointError

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
# torch.save's legacy (non-zip) format starts with a pickled magic number: this long's bytes.
LEGACY_TORCH_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
SNIFF_BYTES = 4096
# What torch.load raises on a damaged file that passed the sniffing (a zip cut off inside a record).
UNREADABLE_CHECKPOINT = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    IndexError,
    KeyError,
)


def read_checkpoint(path: Path, name: str) -> object:
    """`torch.load(path, weights_only=True)`, or one CheckpointError line starting with `name`
    (the file, or the option naming it) that says what the file is instead."""
    if kind := exported_kind(path):
        raise CheckpointError(
            f"{name}: an exported {kind} model (python -m kmnist.tasks.export), not a checkpoint; pass the "
            f".ckpt it was exported from (or load it with "
            f"{'onnxruntime' if kind == 'ONNX' else 'torch.jit.load'})"
        )
    with open(path, "rb") as file:
        head = file.read(SNIFF_BYTES)
    if refused := _pickle_kind(head):
        raise CheckpointError(f"{name}: refused: {refused}")
    if what := _not_a_checkpoint(path, head):
        raise CheckpointError(f"{name}: cannot be read as a checkpoint: {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(
            f"{name}: refused: it holds Python objects{what} beside tensors and plain values, and loading "
            "them could run code; a train.py checkpoint holds none"
        ) from None
    except UNREADABLE_CHECKPOINT as err:
        raise CheckpointError(
            f"{name}: cannot be read as a checkpoint: a damaged torch file "
            f"(truncated or corrupt: {_detail(err)})"
        ) from None


def exported_kind(path: Path) -> str | None:
    """ONNX by its suffix; TorchScript by its archive (a zip like a checkpoint's, but holding
    compiled code)."""
    if path.suffix == ".onnx":
        return "ONNX"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    return "TorchScript" if any(n.split("/", 1)[-1] == "constants.pkl" for n in names) else None


def _pickle_kind(head: bytes) -> str | None:
    """A plain Python pickle (protocol 2+), which torch.save's legacy format is not: never opened."""
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5 and LEGACY_TORCH_MAGIC not in head[:32]:
        return "it is a Python pickle, not a torch checkpoint, and unpickling it could run code; not opened"
    return None


def _not_a_checkpoint(path: Path, head: bytes) -> str | None:
    """What the file is, when it is not torch.save's output; None when it may be."""
    if not head:
        return "the file is empty (0 bytes)"
    if head.startswith(ZIP_MAGIC):
        return _zip_kind(path)
    if head[:1] == b"\x80" and LEGACY_TORCH_MAGIC in head[:32]:
        return None  # torch.save(..., _use_new_zipfile_serialization=False)
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as packed:
                text = _text(packed.read(SNIFF_BYTES))
        except (OSError, EOFError, zlib.error):
            text = None
        return f"it is a gzip-compressed {_text_kind(text)}" if text is not None else "it is a gzip file"
    if (text := _text(head)) is not None:
        return f"it is a {_text_kind(text)}"
    return f"it is not a torch checkpoint (binary data starting {head[:8].hex(' ')})"


def _zip_kind(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "it is a truncated or damaged zip archive (a checkpoint cut off while copying?)"
    if any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names):
        return None  # torch.save's archive: FOLDER/data.pkl beside the tensors' storages
    listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"it is a zip archive of other files ({listed or 'none'}), not a torch checkpoint"


def _text(data: bytes) -> str | None:
    """`data` as text if it reads as UTF-8 without control bytes (a cut multi-byte tail allowed)."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return None
    return text if text and not re.search(r"[\x00-\x08\x0e-\x1f\x7f]", text) else None


def _text_kind(text: str) -> str:
    first = text.lstrip("\ufeff").splitlines()[0].strip() if text.strip() else ""
    shown = repr(first if len(first) <= 40 else first[:36] + "...")
    return f"CSV file (first line {shown})" if first.count(",") >= 1 else f"text file (first line {shown})"


def _detail(err: BaseException) -> str:
    """The first line of torch's message that is not its advice to load with weights_only=False."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(err)).splitlines()]
    kept = [line for line in lines if line and "weights_only" not in line]
    return (kept[0] if kept else type(err).__name__)[:120]
