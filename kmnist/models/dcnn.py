"""Deep CNN from the course notebook: six valid-padding convolutions, two dense layers."""

from __future__ import annotations

from torch import nn

from kmnist import NUM_CLASSES
from kmnist.errors import ConfigError
from kmnist.models.registry import register_model
from kmnist.models.sequential import FeaturesThenClassifier


def _prelu(channels: int) -> nn.PReLU:
    # Keras' PReLU (shared_axes=None) learns one alpha per element (e.g. 8*22*22 after conv1);
    # here one alpha per channel, so this net has 9,032 fewer parameters than the Keras one
    # at 28x28 input ((8*22*22 - 8) + (16*18*18 - 16)); the dense PReLUs match. Keras inits alpha to 0.
    return nn.PReLU(num_parameters=channels, init=0.0)


class DCNN(FeaturesThenClassifier):
    """Conv 8@7x7, 16@5x5, 32@3x3, 64@3x3, 128@2x2, 64@4x4 (valid; 28->22->18->16->14->13->10);
    Dense 512, Dense 512, Dense num_classes. The notebook's MaxPool2D(1x1) layers are identity
    maps and are left out. Only the first two convolutions have an activation, as in the notebook."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 1,
        input_size: int = 28,
        dropout: float = 0.5,
        dropout_light: float = 0.25,
    ):
        super().__init__()
        side = input_size - 6 - 4 - 2 - 2 - 1 - 3
        if side < 1:
            raise ConfigError(f"model.input_size={input_size} is too small for dcnn (needs >= 19)")
        # BatchNorm uses PyTorch's defaults (momentum 0.1, eps 1e-5), not Keras' (0.99 / 1e-3).
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 8, 7),
            _prelu(8),
            nn.BatchNorm2d(8),
            nn.Dropout(dropout),
            nn.Conv2d(8, 16, 5),
            _prelu(16),
            nn.Dropout(dropout),
            nn.Dropout(dropout_light),
            nn.Conv2d(16, 32, 3),
            nn.Conv2d(32, 64, 3),
            nn.Dropout(dropout_light),
            nn.Conv2d(64, 128, 2),
            nn.Conv2d(128, 64, 4),
            nn.Dropout(dropout_light),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * side * side, 512),
            _prelu(512),
            nn.BatchNorm1d(512),
            nn.Dropout(dropout),
            nn.Linear(512, 512),
            _prelu(512),
            nn.Linear(512, num_classes),
        )


@register_model
def dcnn(**kwargs) -> DCNN:
    return DCNN(**kwargs)
