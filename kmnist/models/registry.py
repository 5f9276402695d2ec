"""One name -> constructor registry, so `model=NAME` in a config picks a network (as in timm)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from kmnist.errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}

# Keys of a model config that tell the framework how to feed and run the network, not the
# network's constructor: the data module reads the first three, the training loop the others.
FRAMEWORK_KEYS = ("name", "imagenet_norm", "channels_last", "compile", "cuda_graph")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a factory under its function name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    """The single door to every network: `create_model("cnn", num_classes=10)`."""
    if name not in _MODELS:
        raise ConfigError(f"model.name={name!r} is not a known model; known: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


def build_network(model_cfg: dict) -> nn.Module:
    """Build the network a `conf/model/*.yaml` describes (framework keys stripped)."""
    cfg = dict(model_cfg)
    kwargs = {k: v for k, v in cfg.items() if k not in FRAMEWORK_KEYS}
    return create_model(cfg["name"], **kwargs)
