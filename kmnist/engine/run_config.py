"""The config a run actually runs with, derived from the composed one without editing it.

Hydra saves the composed config (`.hydra/config.yaml`) before the task starts. A few settings
follow from others and from the data: with no held-out rows there is nothing to monitor, with
`data.val_file` alone the monitor watches `dev/*`, fine-tuning's two stages make up the epochs,
`trainer.precision=auto` becomes what the device computes fast (`kmnist/engine/precision.py`).
`derive_run_config` returns a copy with those changes and says each one, so the run directory can
keep them beside the composed config (`derived.yaml`), and checkpoints store the result.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from kmnist.engine.precision import resolve_precision
from kmnist.utils.atomic import atomic_write_text
from kmnist.utils.hashing import file_sha256


@dataclass(frozen=True)
class Derived:
    key: str  # a dotted config key
    value: object  # its new value; `DELETE` drops the key
    reason: str


DELETE = object()


def plain_config(cfg: DictConfig) -> dict:
    """The run's resolved config as plain containers (stored in checkpoints; no Hydra internals)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key != "hydra"
    }


def _changes(cfg: DictConfig, val_set_names: list[str], holds_out_validation: bool) -> list[Derived]:
    changes: list[Derived] = []
    callbacks = cfg.get("callbacks") or {}
    monitor = cfg.scheduler.get("monitor") or ""
    if not val_set_names:
        why = "no validation rows (data.val_writers=0 and no data.val_file): the last epoch is kept"
        changes += [
            Derived("optimized_metric", "train/acc", why),
            Derived("trainer.limit_val_batches", 0, why),
            Derived("validate_best", False, why),
        ]
        if "early_stopping" in callbacks:
            changes.append(Derived("callbacks.early_stopping", DELETE, why))
        if "model_checkpoint" in callbacks:
            changes += [
                Derived("callbacks.model_checkpoint.monitor", None, why),
                Derived("callbacks.model_checkpoint.filename", "epoch_{epoch:03d}", why),
            ]
        if monitor.startswith("val/"):
            changes.append(Derived("scheduler.monitor", "train/loss", why))
    elif not holds_out_validation:
        why = "no held-out writers, so data.val_file (dev/*) is what the run watches"
        for key, value in (
            ("optimized_metric", cfg.get("optimized_metric") or ""),
            ("scheduler.monitor", monitor),
        ):
            if value.startswith("val/"):
                changes.append(Derived(key, "dev/" + value.removeprefix("val/"), why))
    checkpoint_monitor = (
        None
        if any(c.key == "callbacks.model_checkpoint.monitor" for c in changes)
        else (callbacks.get("model_checkpoint") or {}).get("monitor", "unset")
    )
    if "model_checkpoint" in callbacks and checkpoint_monitor is None and "last_checkpoint" in callbacks:
        why = (
            "model_checkpoint without a monitor saves every epoch and keeps last.ckpt itself; a second "
            "ModelCheckpoint for last.ckpt would be identical (Lightning refuses two)"
        )
        changes += [
            Derived("callbacks.last_checkpoint", DELETE, why),
            Derived("callbacks.model_checkpoint.save_last", True, why),
        ]
    if resolved := resolve_precision(
        cfg.trainer.get("precision"), str(cfg.trainer.get("accelerator", "auto"))
    ):
        changes.append(Derived("trainer.precision", *resolved))
    if cfg.get("finetune"):
        changes.append(
            Derived(
                "trainer.max_epochs",
                cfg.finetune.frozen_epochs + cfg.finetune.unfrozen_epochs,
                "finetune: the frozen and unfrozen stages make up the whole run",
            )
        )
    return changes


def derive_run_config(
    cfg: DictConfig, val_set_names: list[str], holds_out_validation: bool
) -> tuple[DictConfig, list[Derived]]:
    """A copy of `cfg` with what follows from the data module's validation sets; `cfg` is untouched."""
    run_cfg = copy.deepcopy(cfg)
    changes = _changes(cfg, val_set_names, holds_out_validation)
    with open_dict(run_cfg):
        for change in changes:
            apply(run_cfg, change)
    return run_cfg, changes


def apply(cfg: DictConfig, change: Derived) -> None:
    parent_key, _, leaf = change.key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if change.value is DELETE:
        parent.pop(leaf, None)
    else:
        parent[leaf] = change.value


def write_derived(changes: list[Derived], path: Path, inputs: dict[str, str | None] | None = None) -> None:
    """`derived.yaml`: each changed key with its new value and why, then the files the run read as resolved
    (config.yaml keeps `${oc.env:KMNIST_DATA,...}` and `${first_file:...}`, which another machine resolves
    otherwise), each with its sha256. Nothing is written when there is neither."""
    read = {key: value for key, value in (inputs or {}).items() if value}
    if not changes and not read:
        return
    lines = ["# What this run changed in .hydra/config.yaml (the checkpoints store the whole result)."]
    for change in changes:
        value = "null  # removed:" if change.value is DELETE else json.dumps(change.value) + "  #"
        lines.append(f"{change.key}: {value} {change.reason}")
    if read:
        lines.append("# The files it read, resolved:")
        for key, file in read.items():
            digest = file_sha256(file) if Path(file).is_file() else "missing"
            lines.append(f"#   {key} = {file}  (sha256 {digest})")
    atomic_write_text(path, "\n".join(lines) + "\n")
