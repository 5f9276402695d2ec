"""Export a checkpoint as a deployable model and check it against PyTorch.

    python -m kmnist.tasks.export ckpt=PATH format=onnx|torchscript [output=FILE] [batch=64]

The exported graph includes the preprocessing (scaling, resizing, channel repeat) and a softmax:
it takes float32 pixels 0..255 of shape (N, 1, 28, 28) and returns class probabilities (N, 10).
It runs a batch through the exported file (onnxruntime for ONNX, torch.jit.load for TorchScript)
before renaming it into place, and fails, writing nothing, if the outputs differ from PyTorch's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from kmnist.engine.inference import LoadedModel, load_checkpoint
from kmnist.errors import ConfigError, ExportError
from kmnist.tasks.wrapper import task_wrapper
from kmnist.utils.atomic import atomic_write

log = logging.getLogger(__name__)
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportedClassifier(nn.Module):
    """Pixels 0..255 -> probabilities: everything a deployment needs in one graph."""

    def __init__(self, model: LoadedModel):
        super().__init__()
        self.preprocess, self.net = model.preprocess, model.net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(self.preprocess(pixels / 255.0)), dim=-1)


def export(
    ckpt: str | Path,
    fmt: str,
    output: str | Path | None = None,
    batch: int = 64,
    atol: float = 1e-4,
    overwrite: bool = False,
) -> dict:
    """Write `ckpt` as `fmt` to `output` (default: the checkpoint's path with .onnx / .pt, replaced freely);
    an `output` that already exists is replaced only with `overwrite`, as predict.py's submissions."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    if not isinstance(ckpt, (str, Path)):
        raise ConfigError(
            f"ckpt={ckpt}: export takes one checkpoint (an ensemble is several networks; export each)"
        )
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch={batch!r}: expected a number of check images >= 1, e.g. 64")
    if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
        raise ConfigError(f"atol={atol!r}: expected a tolerance >= 0, e.g. 1e-4")
    if output and Path(output).is_dir():  # else the finished, checked export fails at its rename
        raise ConfigError(
            f"output={output}: is a folder; name the file, "
            f"e.g. output={Path(output) / Path(ckpt).with_suffix(FORMATS[fmt]).name}"
        )
    if output and Path(output).exists() and not overwrite:  # before the work, not after it
        raise ConfigError(
            f"output={output}: already exists; pass overwrite=true to replace it, or name another file"
        )
    model = load_checkpoint(ckpt)
    wrapper = ExportedClassifier(model).eval()
    output = Path(output) if output else Path(ckpt).with_suffix(FORMATS[fmt])
    output.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randint(0, 256, (batch, 1, 28, 28), generator=torch.Generator().manual_seed(0)).float()
    with torch.inference_mode():
        expected = wrapper(example).numpy()

    if fmt == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                "format=onnx needs onnxruntime to check the export: pip install -e '.[export]'"
            ) from None

    checked = {}

    def write_and_check(tmp: Path) -> None:
        # The check runs on the temporary file: a failed one leaves any earlier export in place.
        if fmt == "onnx":
            # The TorchScript-based exporter: the dynamo one needs onnxscript, which is not a dependency.
            torch.onnx.export(
                wrapper,
                (example,),
                tmp,
                input_names=["pixels"],
                output_names=["probs"],
                opset_version=17,
                dynamic_axes={"pixels": {0: "batch"}, "probs": {0: "batch"}},
                dynamo=False,
            )
            session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = session.run(["probs"], {"pixels": example.numpy()})[0]
        else:
            torch.jit.save(torch.jit.trace(wrapper, example), str(tmp))
            with torch.inference_mode():
                got = torch.jit.load(str(tmp))(example).numpy()
        checked["max_diff"] = max_diff = float(np.abs(got - expected).max())
        if max_diff > atol or not np.array_equal(got.argmax(1), expected.argmax(1)):
            raise ExportError(
                f"{output}: exported outputs differ from PyTorch's (max |diff| {max_diff:.2e} > {atol:.0e}); "
                f"not written"
            )

    atomic_write(output, write_and_check)
    max_diff = checked["max_diff"]
    log.info(
        "wrote %s (%s); outputs match PyTorch on a batch of %d (max |diff| %.2e)",
        output,
        fmt,
        batch,
        max_diff,
    )
    return {"output": str(output), "format": fmt, "max_abs_diff": max_diff}


@hydra.main(version_base="1.3", config_path="../../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    task_wrapper(lambda cfg: export(cfg.ckpt, cfg.format, cfg.output, cfg.batch, cfg.atol, cfg.overwrite))(
        cfg
    )


if __name__ == "__main__":
    from kmnist.utils.hints import run_with_hints

    run_with_hints(main, "export")
