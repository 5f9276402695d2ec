"""One name -> constructor registry, so `model=NAME` in a config picks a network (as in timm),
and each network's input spec: the one place data, training and inference learn what it takes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from kmnist import NUM_CLASSES
from kmnist.errors import ConfigError


@dataclass(frozen=True)
class InputSpec:
    """What a network takes: channels, side length, and ImageNet normalisation (pretrained nets)."""

    in_chans: int = 1
    input_size: int = 28
    imagenet_norm: bool = False


_MODELS: dict[str, Callable[..., nn.Module]] = {}
_INPUTS: dict[str, InputSpec] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, input: InputSpec = InputSpec()):
    """Decorator: register a factory under its function name, with the input it takes by default
    (`@register_model` or `@register_model(input=InputSpec(3, 32, imagenet_norm=True))`)."""

    def register(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if factory.__name__ in _MODELS:
            raise ValueError(f"model {factory.__name__!r} is registered twice")
        _MODELS[factory.__name__], _INPUTS[factory.__name__] = factory, input
        return factory

    return register(fn) if fn is not None else register


def list_models() -> list[str]:
    return sorted(_MODELS)


def _known(name: str) -> str:
    if name not in _MODELS:
        raise ConfigError(f"model.name={name!r} is not a known model; known: {', '.join(list_models())}")
    return name


def input_spec(model_cfg: Mapping) -> InputSpec:
    """The input a model config's network takes: its registered spec, with the config's
    `in_chans` / `input_size` (constructor arguments) where it sets them."""
    spec = _INPUTS[_known(model_cfg["name"])]
    return InputSpec(
        in_chans=model_cfg.get("in_chans", spec.in_chans),
        input_size=model_cfg.get("input_size", spec.input_size),
        imagenet_norm=spec.imagenet_norm,
    )


def create_model(name: str, **kwargs) -> nn.Module:
    """The single door to every network: `create_model("cnn", dropout=0.3)`. The class count and
    the registered input shape are filled in unless given."""
    spec = _INPUTS[_known(name)]
    defaults = {"num_classes": NUM_CLASSES, "in_chans": spec.in_chans, "input_size": spec.input_size}
    return _MODELS[name](**{**defaults, **kwargs})


def build_network(model_cfg: Mapping) -> nn.Module:
    """Build the network a `conf/model/*.yaml` describes: `name` plus constructor arguments."""
    kwargs = {k: v for k, v in model_cfg.items() if k != "name"}
    return create_model(model_cfg["name"], **kwargs)
