"""Load checkpoints safely and predict: the body of `predict.py` (and of export and reports).

Checkpoints are read with `torch.load(weights_only=True)` after sniffing the file
(kmnist.engine.checkpoint_file): a file cannot run code on load. The
network is rebuilt from the config stored in the checkpoint's hyperparameters, and the
normalisation statistics from the data module's state saved beside it.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kmnist import NUM_CLASSES
from kmnist.data.preprocess import Preprocess
from kmnist.data.tta import View, apply_view, resolve_views
from kmnist.engine.checkpoint_file import read_checkpoint
from kmnist.engine.precision import BF16, FP32, device_type, precision_name, resolve_precision
from kmnist.errors import CheckpointError, ConfigError, DataError
from kmnist.models import build_network, input_spec
from kmnist.models.probabilities import probabilities
from kmnist.utils.atomic import atomic_write_csv, atomic_write_text

DATAMODULE_KEY = "KannadaMNISTDataModule"

# Checkpoints written before the speed options and the input spec left the model config kept
# them there; they are not constructor arguments.
LEGACY_MODEL_KEYS = ("imagenet_norm", "channels_last", "compile", "cuda_graph")
WEIGHT_SOURCE_KEYS = (
    "pretrained",
    "weights",
)  # where a network's first weights come from: a checkpoint replaces them


@dataclass
class LoadedModel:
    net: nn.Module
    preprocess: Preprocess
    config: dict
    path: Path

    def to(self, device: torch.device) -> LoadedModel:
        self.net.to(device)
        self.preprocess.to(device)
        return self


def load_checkpoint(path: str | Path) -> LoadedModel:
    path = Path(path)
    if path.is_dir():  # a run folder, as train.py's ckpt_path= takes: it exists, so "not found" would mislead
        found = sorted(path.glob("*.ckpt")) or sorted(
            (path / "checkpoints").glob("*.ckpt")
        )  # its checkpoints/ itself, or the run's
        example = next(
            (p for p in found if p.name == "last.ckpt"),
            found[0] if found else path / "checkpoints" / "last.ckpt",
        )
        raise CheckpointError(f"{path}: a folder, not a checkpoint; pass a .ckpt file in it, e.g. {example}")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (pass ckpt=PATH to a .ckpt written by train.py)")
    ckpt = read_checkpoint(path, str(path))  # sniffed first: one line naming what a wrong file is
    config = ckpt.get("hyper_parameters", {}).get("config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or "model" not in config or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path}: not a kmnist checkpoint (no stored model config); train one with train.py"
        )

    # Weights come from the checkpoint: never download or read pretrained ones again.
    model_cfg = {k: v for k, v in config["model"].items() if k not in LEGACY_MODEL_KEYS}
    if "pretrained" in model_cfg:
        model_cfg.update(pretrained=False, weights=None)
    net = build_network(model_cfg)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not match model {model_cfg['name']!r} ({str(err).splitlines()[0]})"
        ) from None
    # NHWC for inference whatever the training layout: the same numbers, 1.1-2.7x faster on CPU.
    net.eval().to(memory_format=torch.channels_last)

    preprocess = Preprocess(
        scaling=config.get("data", {}).get("scaling", "scale"), **asdict(input_spec(model_cfg))
    )
    stats = ckpt.get(DATAMODULE_KEY) or {}
    preprocess.set_statistics(stats.get("mean", 0.0), stats.get("std", 1.0))
    return LoadedModel(net=net, preprocess=preprocess, config=config, path=path)


def inference_bf16(precision: str | int, device: torch.device) -> bool:
    """Whether to predict under bf16 autocast: `precision` is 32-true, bf16-mixed or auto."""
    name = precision_name(precision)
    resolved = resolve_precision(name, device.type)
    return (resolved[0] if resolved else name) == BF16


@torch.inference_mode()
def predict_proba(
    models: list[LoadedModel],
    images: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    tta: bool | str | tuple[View, ...] | None = False,
    progress: bool = True,
    precision: str = FP32,
) -> np.ndarray:
    """Mean softmax over models (and TTA views: `kmnist.data.tta`) for uint8 images (N, 28, 28) -> (N, 10).
    `precision=auto` runs the networks under bf16 autocast where the device computes bf16 natively."""
    if not models:
        raise ConfigError("no checkpoint to predict with: ckpt= needs at least one .ckpt")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"batch_size={batch_size!r}: expected a positive number of images per batch, e.g. 256"
        )
    device = torch.device(device)
    bf16 = inference_bf16(precision, device)
    for model in models:
        model.to(device)
    data = torch.as_tensor(images)
    if data.ndim == 3:
        data = data.unsqueeze(1)
    views = resolve_views(tta)
    starts = range(0, len(data), batch_size)
    out = []
    if progress and sys.stderr.isatty():  # a transient bar: nothing to show in a log or a pipe
        from rich.progress import track  # here: rich costs a start 0.1-0.2 s on 2 cores

        starts = track(starts, description="predicting", transient=True)
    for start in starts:
        x = Preprocess.to_unit(data[start : start + batch_size].to(device, non_blocking=True))
        probs = 0
        for model in models:
            for view in views:
                inputs = model.preprocess(apply_view(x, view)).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    probs = probs + probabilities(model.net, inputs)
        out.append((probs / (len(models) * len(views))).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, NUM_CLASSES), dtype=np.float32)


def refuse_overwrite(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise DataError(f"{path}: already exists; pass overwrite=true to replace it, or output=OTHER.csv")


def write_submission(ids: np.ndarray, labels: np.ndarray, path: str | Path, overwrite: bool = True) -> Path:
    path = Path(path)
    refuse_overwrite(path, overwrite)
    ids, labels = np.asarray(ids), np.asarray(labels)
    if path.suffix != ".gz" and ids.dtype.kind in "iu" and labels.dtype.kind in "iu":
        # The bytes pandas writes for two integer columns, without importing pandas (0.5-1 s of
        # predict.py's start on 2 cores).
        rows = "".join(f"{i},{label}\n" for i, label in zip(ids.tolist(), labels.tolist()))
        return atomic_write_text(path, "id,label\n" + rows)
    import pandas as pd

    return atomic_write_csv(pd.DataFrame({"id": ids, "label": labels}), path)


def resolve_device(accelerator: str) -> torch.device:
    """predict.py's / the pipeline's `accelerator` as a device: auto, cpu, gpu (cuda), mps; one line
    naming the option for anything else, or for a GPU this machine does not have (torch raised later)."""
    name = str(accelerator)
    kind, _, index = name.partition(":")  # cuda:1 / gpu:1 picks one GPU of several
    if kind not in ("auto", "cpu", "gpu", "cuda", "mps") or (
        index and (kind not in ("gpu", "cuda") or not index.isdigit())
    ):
        raise ConfigError(f"accelerator={name}: expected auto, cpu, gpu (or gpu:N) or mps")
    device = torch.device(device_type(kind) + (f":{index}" if index else ""))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator={name}: no CUDA GPU is visible on this machine; accelerator=cpu, or auto"
        )
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(
            f"accelerator={name}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"accelerator={name}: no Apple GPU (MPS) on this machine; accelerator=cpu, or auto")
    return device
