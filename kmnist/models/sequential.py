"""The shape of the notebook's Keras Sequential CNNs: a feature stack, then a dense classifier."""

from __future__ import annotations

import torch
from torch import nn


class FeaturesThenClassifier(nn.Module):
    """Subclasses set `features` (convolutions, ending in Flatten) and `classifier` (dense layers)."""

    features: nn.Module
    classifier: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
