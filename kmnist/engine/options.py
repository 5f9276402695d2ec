"""Every check of a training config's options, in one place, run before anything is built.

Values out of range and options that cannot be combined end as one `ConfigError` line that names
`option=value`, instead of a `ZeroDivisionError` or a torch traceback minutes into a run. Each
option's type and range is declared once, in `engine/schema.py`; the rules here are those between
options. Checks that need the data (e.g. `data.val_writers` against the writers a file holds) stay
with the data module, which knows the data.
"""

from __future__ import annotations

import difflib

from omegaconf import DictConfig, OmegaConf

from kmnist.engine.schema import check_declared
from kmnist.errors import ConfigError


def processes(trainer_cfg: DictConfig) -> int:
    """How many processes the trainer config asks for; `auto`/-1 devices count as one unless the
    strategy is DDP (the Trainer, not yet built, would know the machine's count)."""
    devices = trainer_cfg.get("devices", 1)
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        per_node = len(devices)
    elif isinstance(devices, int) and devices > 0:
        per_node = devices
    else:
        per_node = 2 if "ddp" in str(trainer_cfg.get("strategy", "")) else 1
    return per_node * int(trainer_cfg.get("num_nodes", 1) or 1)


def check_device(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch  # here only: every other option is checked before torch loads (seconds on 2 cores)

    if not torch.cuda.is_available():  # Lightning's own refusal is a multi-line trace
        raise ConfigError(
            f"trainer.accelerator={accelerator}: no CUDA GPU is visible on this machine; trainer=cpu, or "
            "trainer.accelerator=auto to take whatever there is"
        )


def check_combinations(cfg: DictConfig) -> None:
    callbacks = cfg.get("callbacks") or {}
    # A callback is on when its entry has a _target_ (as train.instantiate_group builds them): an
    # experiment's leftover settings (best_gpu's ema.decay under callbacks=[default,swa]) are not one.
    active = {name for name, item in callbacks.items() if OmegaConf.is_dict(item) and "_target_" in item}
    if {"ema", "swa"} <= active:
        # Each swaps its average in for validation and checkpoints: together they would swap twice.
        raise ConfigError(
            "callbacks.ema and callbacks.swa: pick one weight average (e.g. callbacks=[default,swa], "
            "or ~callbacks.ema on an experiment that adds it)"
        )
    if finetune := cfg.get("finetune"):
        frozen, unfrozen = finetune.get("frozen_epochs", 0), finetune.get("unfrozen_epochs", 0)
        if frozen + unfrozen < 1:  # together they are trainer.max_epochs (run_config.py)
            raise ConfigError(
                f"finetune.frozen_epochs={frozen} and finetune.unfrozen_epochs={unfrozen}: "
                "no epoch to train; give one of them at least 1"
            )
    speed = cfg.speed
    if speed.cuda_graph:
        if speed.compile:
            raise ConfigError(
                "speed.cuda_graph=true and speed.compile=true: pick one (speed.compile=reduce-overhead is "
                "torch.compile's own CUDA-graph mode)"
            )
        if cfg.get("finetune"):
            raise ConfigError(
                "speed.cuda_graph=true does not combine with finetune (its stages rebuild the optimiser)"
            )
        if str(cfg.trainer.get("precision", "")).startswith("16"):
            # fp16 needs a loss scaler around backward; the graph calls backward itself (bf16 needs none).
            raise ConfigError(
                f"speed.cuda_graph=true does not support trainer.precision={cfg.trainer.precision}; "
                f"use bf16-mixed or 32-true"
            )
        if (n := processes(cfg.trainer)) > 1:
            raise ConfigError(
                f"speed.cuda_graph=true runs on one device; this trainer asks for {n} processes"
            )


# What the module and the train timer log, each validation set under its prefix (engine/module.py,
# callbacks/timing.py).
LOGGED_METRICS = (
    *(f"{stage}/{metric}" for stage in ("train", "val", "dev") for metric in ("loss", "acc")),
    "time/train_seconds",
    "time/epoch_seconds",
)


def check_scheduler(cfg: DictConfig) -> None:
    """Lightning checks these only when it configures the optimiser, and the monitor only at the
    first epoch's end: a traceback, the last one after a whole epoch of training."""
    scheduler = cfg.get("scheduler") or {}
    if not scheduler.get("fn"):
        return
    monitor = scheduler.get("monitor")
    if not monitor and str(scheduler.fn.get("_target_", "")).endswith("ReduceLROnPlateau"):
        raise ConfigError(
            "scheduler.monitor=null: ReduceLROnPlateau cuts the LR when a metric stops improving; "
            "name it, e.g. scheduler.monitor=val/loss"
        )
    check_logged("scheduler.monitor", monitor)


def check_logged(key: str, metric) -> None:
    """A metric name an option watches must be one the run logs: optimized_metric=val/acuracy trained a
    whole epoch, then ended in ModelCheckpoint's traceback."""
    if metric and str(metric) not in LOGGED_METRICS:
        close = difflib.get_close_matches(str(metric), LOGGED_METRICS, n=1)
        raise ConfigError(
            f"{key}={metric}: not a metric this run logs; "
            + (f"did you mean {close[0]}?" if close else f"one of {', '.join(LOGGED_METRICS)}")
        )


def check_dev_metrics(cfg: DictConfig) -> None:
    """A dev/* metric needs the dev file: without one (paths.dev_file found neither test_dev.csv.gz nor
    test_labelled.csv.gz) a dev_* grid would train every job and then rank none of them."""
    for key in ("optimized_metric", "leaderboard_metric"):
        check_logged(key, cfg.get(key))
    if cfg.data.get("val_file"):
        return
    for key in ("optimized_metric", "leaderboard_metric"):
        if str(cfg.get(key) or "").startswith("dev/"):
            raise ConfigError(
                f"{key}={cfg.get(key)}: no dev file to measure it on (data.val_file=null: neither "
                f"test_dev.csv.gz nor test_labelled.csv.gz in paths.data_dir={cfg.data.get('dir')}); "
                "get them with `python -m kmnist.data.download`, pass data.val_file=PATH, or rank by val/acc"
            )


def check_options(cfg: DictConfig) -> None:
    """Raise a ConfigError naming the first option at fault; return quietly when all are sound."""
    check_declared(cfg)  # each option's own type and range (engine/schema.py)
    check_device(cfg)
    check_combinations(cfg)
    check_scheduler(cfg)
    check_dev_metrics(cfg)
