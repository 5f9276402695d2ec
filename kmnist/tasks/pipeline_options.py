"""The pipeline's options, checked before anything trains. A typo in the last member, a threshold
no prediction can reach or a round count of -1 would otherwise surface after hours of training
(or never: the rounds were skipped with a warning). A single value where a list is expected
(`seeds=0`, `checkpoints=PATH`) is a list of one."""

from __future__ import annotations

import copy
from collections.abc import Callable

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from kmnist.data.tta import resolve_views
from kmnist.engine.inference import resolve_device
from kmnist.engine.options import check_options
from kmnist.engine.precision import precision_name
from kmnist.errors import ConfigError
from kmnist.tasks.pipeline_runs import run_data_overrides
from kmnist.utils.lists import as_list

LIST_OPTIONS = ("train", "seeds", "members", "checkpoints")


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value}: expected a whole number >= {minimum}")
    return value


def with_lists(cfg: DictConfig) -> DictConfig:
    """A copy of `cfg` whose list options are lists. The copy, not `cfg`: `resume=` compares `cfg`
    with the folder's saved options, which hold them as they were typed."""
    out = copy.deepcopy(cfg)
    with open_dict(out):
        for name in LIST_OPTIONS:
            if not OmegaConf.is_list(out.get(name)):
                out[name] = as_list(out.get(name))
        if not OmegaConf.is_list(out.distill.get("overrides")):
            out.distill.overrides = as_list(out.distill.get("overrides"))
    return out


def check_pipeline_options(cfg: DictConfig, compose: Callable[[list[str]], DictConfig]) -> None:
    """Raise ConfigError naming the first bad option of `cfg` (as `with_lists` gives it); `compose`
    builds a training run's config from overrides (Hydra rejects an unknown group, option or key
    there, as train.py would)."""
    for seed in cfg.seeds:
        _count("seeds", seed, 0)
    threshold = cfg.pseudo_label.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"pseudo_label.threshold={threshold}: expected a confidence in [0, 1], e.g. 0.85")
    _count("pseudo_label.rounds", cfg.pseudo_label.rounds, 0)
    _count("batch_size", cfg.batch_size, 1)
    resolve_views(cfg.tta)  # a bad view-set name
    precision_name(cfg.precision)  # and a bad precision fail now too
    resolve_device(cfg.accelerator)  # and a device this machine lacks, not after the members trained
    runs = []
    if (
        not cfg.checkpoints or cfg.pseudo_label.rounds > 0
    ):  # the members train (given checkpoints: in the rounds only)
        runs = [
            (f"members[{i}]={member!r}", str(member).split()) for i, member in enumerate(cfg.members)
        ] or [("train", [])]
    if cfg.distill.enabled:
        runs.append(
            (f"distill.overrides={list(cfg.distill.overrides)}", [str(o) for o in cfg.distill.overrides])
        )
    dev = run_data_overrides(cfg)  # as train_run adds them
    for option, overrides in runs:
        try:
            run_cfg = compose([*map(str, cfg.train), *dev, *overrides])
        except (HydraException, OmegaConfBaseException) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{option}: {first}") from None
        try:  # and its values, as train.py checks them: `seed=x` in the last member composes
            check_options(run_cfg)
        except ConfigError as err:
            raise ConfigError(f"{option}: {err}") from None
