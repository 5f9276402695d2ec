"""CNN1 from the course notebook: three conv+pool blocks, two dense layers with dropout."""

from __future__ import annotations

from torch import nn

from kmnist import NUM_CLASSES
from kmnist.models.registry import register_model
from kmnist.models.sequential import FeaturesThenClassifier


class CNN1(FeaturesThenClassifier):
    """Conv 12@7x7 / 32@3x3 / 64@3x3 (same padding, ReLU, MaxPool 2 each); Dense 128, Dense 64
    (ReLU, Dropout), Dense num_classes. Keras' default init is Glorot-uniform; kept as PyTorch's."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 1,
        input_size: int = 28,
        dropout: float = 0.5,
        channels: tuple[int, int, int] = (12, 32, 64),
        hidden: tuple[int, int] = (128, 64),
    ):
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, 7, padding="same"),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding="same"),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding="same"),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = input_size // 2 // 2 // 2
        self.classifier = nn.Sequential(
            nn.Linear(c3 * side * side, hidden[0]),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden[1], num_classes),
        )


@register_model
def cnn(**kwargs) -> CNN1:
    return CNN1(**kwargs)
