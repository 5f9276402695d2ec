"""Class probabilities from a network: the one softmax that prediction, distillation, the run
report and the LightningModule's predict step share."""

from __future__ import annotations

import torch
from torch import nn


def probabilities(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes, in float32 even when the logits come out of bf16 autocast."""
    return torch.softmax(net(x).float(), dim=-1)
