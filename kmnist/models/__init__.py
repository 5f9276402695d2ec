"""Networks as plain nn.Modules, each registered by name. Importing this package registers all."""

from kmnist.models import cnn, convnet, dcnn, dnn, kresnet, resnet50  # noqa: F401  (registers)
from kmnist.models.registry import (
    InputSpec,
    build_network,
    create_model,
    input_spec,
    list_models,
    register_model,
)

__all__ = ["InputSpec", "build_network", "create_model", "input_spec", "list_models", "register_model"]
