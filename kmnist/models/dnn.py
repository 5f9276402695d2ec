"""DNN from the course notebook: a multilayer perceptron on the flattened image."""

from __future__ import annotations

from torch import nn

from kmnist import NUM_CLASSES
from kmnist.errors import ConfigError
from kmnist.models.registry import register_model


class DNN(nn.Module):
    """Flatten; Dense widths (activation, Dropout after each); Dense num_classes.
    `n_neurons` overrides the first width so a sweep can vary it alone."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 1,
        input_size: int = 28,
        n_neurons: int | None = 300,
        hidden: tuple[int, ...] = (300, 100),
        activation: str = "relu",
        negative_slope: float = 0.3,
        dropout: float = 0.2,
    ):
        super().__init__()
        widths = list(hidden)
        if not widths:
            raise ConfigError("model.hidden must list at least one layer width")
        if n_neurons is not None:
            widths[0] = n_neurons
        if activation not in ("relu", "leaky_relu"):
            raise ConfigError(f"model.activation={activation!r}: expected relu or leaky_relu")
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = in_chans * input_size * input_size
        for width in widths:
            # negative_slope 0.3 is Keras' LeakyReLU default (PyTorch's is 0.01).
            act = (
                nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(negative_slope, inplace=True)
            )
            layers += [nn.Linear(fan_in, width), act, nn.Dropout(dropout)]
            fan_in = width
        layers.append(nn.Linear(fan_in, num_classes))
        self.net = nn.Sequential(*layers)
        # He (variance-scaling, fan_in) init as in the notebook; Keras' he_normal truncates the
        # normal but keeps this variance. Zero biases match Keras' default.
        slope = 0.0 if activation == "relu" else negative_slope
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.net(x)


@register_model
def dnn(**kwargs) -> DNN:
    return DNN(**kwargs)
