"""Turn uint8 digit batches into what a network expects: scaled, resized, 1 or 3 channels.

One module used by training (in the data module, after the batch reaches its device) and by
prediction and export (rebuilt from the config stored in a checkpoint), so both see the same
numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kmnist.errors import ConfigError

SCALINGS = ("scale", "center", "standardize")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """uint8 or [0, 1] float (B, 1, 28, 28) -> float (B, in_chans, input_size, input_size).

    scaling: `scale` (x / 255), `center` (minus the training mean), `standardize` (minus the
    mean, over the std; both from the training split). `imagenet_norm` (pretrained ImageNet
    networks) replaces the scaling by ImageNet's per-channel statistics.
    """

    def __init__(
        self,
        scaling: str = "scale",
        input_size: int = 28,
        in_chans: int = 1,
        imagenet_norm: bool = False,
        mean: float = 0.0,
        std: float = 1.0,
    ):
        super().__init__()
        if scaling not in SCALINGS:
            raise ConfigError(f"data.scaling={scaling!r}: expected one of {', '.join(SCALINGS)}")
        if in_chans not in (1, 3):
            raise ConfigError(f"model.in_chans={in_chans}: expected 1 or 3")
        self.scaling, self.input_size, self.in_chans, self.imagenet_norm = (
            scaling,
            input_size,
            in_chans,
            imagenet_norm,
        )
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.register_buffer(
            "imagenet_mean",
            torch.tensor(IMAGENET_MEAN[:in_chans] if in_chans == 3 else IMAGENET_MEAN[:1]).view(1, -1, 1, 1),
        )
        self.register_buffer(
            "imagenet_std",
            torch.tensor(IMAGENET_STD[:in_chans] if in_chans == 3 else IMAGENET_STD[:1]).view(1, -1, 1, 1),
        )

    def set_statistics(self, mean: float, std: float) -> None:
        self.mean.fill_(float(mean))
        self.std.fill_(max(float(std), 1e-6))

    @staticmethod
    def to_unit(x: torch.Tensor) -> torch.Tensor:
        """uint8 0..255 -> float 0..1; float input is taken as already in [0, 1]."""
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_unit(x)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        if self.in_chans == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.imagenet_norm:
            return (x - self.imagenet_mean) / self.imagenet_std
        if self.scaling == "center":
            return x - self.mean
        if self.scaling == "standardize":
            return (x - self.mean) / self.std
        return x
