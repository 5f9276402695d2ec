"""`trainer.precision=auto` (and `predict.py precision=auto`): bf16 autocast where the device
computes bf16 natively, float32 elsewhere.

Lightning has no "auto" precision. bf16 autocast doubles a KResNet's CPU training speed on a CPU
with AVX512-BF16 or AMX (bench/FINDINGS.md), but on one without them (AVX2 only) oneDNN emulates
bf16 and it is slower than float32. A recipe that names one precision would be slow on one of the
two, so the recipe says `auto` and the run records what it resolved to (`derived.yaml`).
"""

from __future__ import annotations

import torch

from kmnist.errors import ConfigError

AUTO = "auto"
BF16 = "bf16-mixed"
FP32 = "32-true"
PRECISIONS = {FP32: FP32, "32": FP32, BF16: BF16, "bf16": BF16, AUTO: AUTO}  # Lightning's spellings


def precision_name(precision: str | int) -> str:
    """predict.py's and the pipeline's `precision=`: 32-true, bf16-mixed or auto; a ConfigError otherwise."""
    if (name := PRECISIONS.get(str(precision))) is None:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return name


def device_type(accelerator: str) -> str:
    """The device a Trainer with this `accelerator` (or predict.py's) runs on: cuda, cpu or other."""
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if accelerator in ("gpu", "cuda") else str(accelerator)


def native_bf16(device: str) -> str | None:
    """Why this device computes bf16 natively (a short reason), or None when it does not."""
    if device == "cuda":
        # including_emulation=False: by default torch also counts GPUs that only emulate bf16 (V100, T4),
        # where it is slower than float32.
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        return "this GPU computes bf16 natively" if native else None
    if device == "cpu":
        capabilities = torch.cpu.get_capabilities()
        found = [name for name in ("amx_bf16", "avx512_bf16") if capabilities.get(name)]
        return f"this CPU computes bf16 natively ({', '.join(found)})" if found else None
    return None


def resolve_precision(precision: object, accelerator: str) -> tuple[str, str] | None:
    """`auto` -> (bf16-mixed or 32-true, why); None for any other value (it is left as given)."""
    if str(precision) != AUTO:
        return None
    device = device_type(accelerator)
    reason = native_bf16(device)
    if reason:
        return BF16, f"trainer.precision=auto: {reason}"
    return (
        FP32,
        f"trainer.precision=auto: no native bf16 on {device} (bf16 would be emulated, slower than float32)",
    )
