"""The 13-layer regularised ConvNet: VGG-style conv/BatchNorm/LeakyReLU blocks with dropout."""

from __future__ import annotations

from torch import nn

from kmnist import NUM_CLASSES
from kmnist.errors import ConfigError
from kmnist.models.registry import register_model
from kmnist.models.sequential import FeaturesThenClassifier


def _block(in_ch: int, out_ch: int, n: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(n):
        # Keras BatchNormalization(momentum=0.9) == PyTorch momentum 0.1 (the weight of the new batch).
        layers += [
            nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding="same"),
            nn.BatchNorm2d(out_ch, eps=1e-5, momentum=0.1),
            nn.LeakyReLU(0.1, inplace=True),
        ]
    return layers + [nn.MaxPool2d(2), nn.Dropout(dropout)]


class ConvNet(FeaturesThenClassifier):
    """[Conv 64@3x3]x3, [Conv 128@3x3]x3, [Conv 256@3x3]x2 (same padding, BN, LeakyReLU 0.1),
    each group followed by MaxPool 2 and Dropout; Dense 256, LeakyReLU, BatchNorm1d; Dense num_classes."""

    def __init__(
        self, num_classes: int = NUM_CLASSES, in_chans: int = 1, input_size: int = 28, dropout: float = 0.25
    ):
        super().__init__()
        side = input_size // 2 // 2 // 2
        if side < 1:
            raise ConfigError(f"model.input_size={input_size} is too small for convnet (needs >= 8)")
        self.features = nn.Sequential(
            *_block(in_chans, 64, 3, dropout),
            *_block(64, 128, 3, dropout),
            *_block(128, 256, 2, dropout),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * side * side, 256),
            nn.LeakyReLU(0.1, inplace=True),
            nn.BatchNorm1d(256),
            nn.Linear(256, num_classes),
        )


@register_model
def convnet(**kwargs) -> ConvNet:
    return ConvNet(**kwargs)
