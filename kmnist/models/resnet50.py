"""timm's ResNet-50 for transfer learning, with layer groups for discriminative fine-tuning."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from kmnist import NUM_CLASSES
from kmnist.errors import ConfigError
from kmnist.models.registry import InputSpec, register_model
from kmnist.utils.network import reachable

_NO_HUB = (
    "ImageNet weights for resnet50 could not be downloaded (Hugging Face hub unreachable or "
    "HF_HUB_OFFLINE set, and not cached): pass model.weights=PATH to a local timm resnet50 "
    "state dict, or model.pretrained=false to train from scratch"
)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick probe, because huggingface_hub retries an unreachable host for ~50 s before failing,
    and reads HF_HUB_OFFLINE only when imported (so the variable is checked here too)."""
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return False
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout=timeout)


def _cached_hub_file() -> str | None:
    """The default resnet50 weights, if an earlier online run left them in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    repo = get_pretrained_cfg("resnet50").hf_hub_id
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(repo, name)
        if isinstance(path, str):
            return path
    return None


def _create(num_classes: int, in_chans: int, pretrained: bool, weights: str | None) -> nn.Module:
    import timm  # imported here: it adds ~2 s to every `import kmnist.models`
    from timm.models import load_state_dict

    kw = dict(num_classes=num_classes, in_chans=in_chans)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"model.weights={weights!r}: no such file (set model.weights to a resnet50 state dict)"
            )
        try:
            state = load_state_dict(str(path))  # also what timm reads below; checked here for a clear error
        except Exception as e:
            detail = (str(e).strip().splitlines() or [""])[0][:120]
            raise ConfigError(
                f"model.weights={weights!r}: could not be read as a resnet50 state dict (a .pth/.safetensors "
                f"of torchvision's or timm's resnet50; {type(e).__name__}: {detail})"
            ) from e
        try:
            # `file=` makes timm drop the 1000-class head and adapt conv1 to in_chans; it then loads
            # non-strictly, so a state dict with other key names would load nothing (checked below).
            overlay = dict(file=str(path))
            model = timm.create_model("resnet50", pretrained=True, pretrained_cfg_overlay=overlay, **kw)
        except Exception as e:
            why = " ".join(str(e).split())[:300]  # torch lists every mismatch; the first few say enough
            raise ConfigError(
                f"model.weights={weights!r} is not a compatible resnet50 state dict: {why}"
            ) from e
        # num_batches_tracked is optional: older (e.g. torchvision) files lack it and BatchNorm copes.
        missing = [
            k
            for k in model.state_dict()
            if not k.startswith("fc.") and not k.endswith("num_batches_tracked") and k not in state
        ]
        if missing:
            raise ConfigError(
                f"model.weights={weights!r} is not a resnet50 state dict: "
                f"{len(missing)} backbone keys missing, e.g. {missing[:3]}"
            )
        return model
    if not pretrained:
        return timm.create_model("resnet50", pretrained=False, **kw)
    if not _hub_reachable():
        cached = _cached_hub_file()
        if cached is None:
            raise ConfigError(_NO_HUB)
        return timm.create_model("resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=cached), **kw)
    try:
        return timm.create_model("resnet50", pretrained=True, **kw)
    except Exception as e:  # hub/HTTP errors vary by huggingface_hub version
        raise ConfigError(f"{_NO_HUB} ({type(e).__name__}: {e})") from e


class ResNet50(nn.Module):
    """Holds the timm model (state dict keys gain a `model.` prefix) and names its layer groups."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        in_chans: int = 3,
        input_size: int = 32,
        pretrained: bool = True,
        weights: str | None = None,
    ):
        super().__init__()
        # input_size is only for the data module: global pooling makes the net size-agnostic.
        self.input_size = input_size
        self.model = _create(num_classes, in_chans, pretrained, weights)

    def forward(self, x):
        return self.model(x)

    @property
    def head(self) -> nn.Module:
        return self.model.fc

    def layer_groups(self) -> list[nn.Module]:
        """[stem, layer1..layer4, head], earliest first, for freezing or per-group learning rates."""
        m = self.model
        return [nn.ModuleList([m.conv1, m.bn1]), m.layer1, m.layer2, m.layer3, m.layer4, m.fc]


@register_model(input=InputSpec(in_chans=3, input_size=32, imagenet_norm=True))
def resnet50(**kwargs) -> ResNet50:
    """`weights` (a local file) wins over `pretrained` (download ImageNet weights through timm)."""
    return ResNet50(**kwargs)
