"""Every check of a training config's options, in one place, run before anything is built.

Values out of range and options that cannot be combined end as one `ConfigError` line that names
`option=value`, instead of a `ZeroDivisionError` or a torch traceback minutes into a run.
Checks that need the data (e.g. `data.val_writers` against the writers a file holds) stay with
the data module, which knows the data.
"""

from __future__ import annotations

import difflib
from numbers import Number

from omegaconf import DictConfig, OmegaConf

from kmnist.errors import ConfigError

_ABSENT = object()


def _number(
    cfg: DictConfig,
    key: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """`key`'s value is a number in the range (`low_open`: above, not at, `low`)."""
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is _ABSENT:  # a config without this option (e.g. an optimiser without momentum)
        return
    if value is None:
        if optional:
            return
        raise ConfigError(f"{key}=null: expected a number")
    if (
        isinstance(value, bool)
        or not isinstance(value, Number)
        or (integer and not float(value).is_integer())
    ):
        raise ConfigError(f"{key}={value!r}: expected {'an integer' if integer else 'a number'}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigError(f"{key}={value}: expected a value in {span}")


AUGMENT_KNOBS = (
    "rotation",
    "translate",
    "shear",
    "zoom",
    "aspect",
    "warp",
    "elastic",
    "stroke",
    "lighting",
    "erase_p",
    "mixup",
    "cutmix",
    "mix_p",
)  # BatchAugment checks their ranges; here, that they are numbers at all


def check_value_ranges(cfg: DictConfig) -> None:
    _number(cfg, "seed", low=0, high=2**32 - 1, integer=True)
    for knob in AUGMENT_KNOBS:
        _number(cfg, f"data.augment.{knob}")
    widths = OmegaConf.select(cfg, "model.widths", default=None)
    if widths is not None and (
        not OmegaConf.is_list(widths)
        or not widths
        or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)
    ):
        raise ConfigError(
            f"model.widths={widths}: expected a list of positive channel counts, e.g. model.widths=[32,64,128]"
        )
    _number(cfg, "data.batch_size", low=1, integer=True)
    _number(cfg, "data.eval_batch_size", low=1, integer=True)
    _number(cfg, "data.limit_rows", low=1, integer=True, optional=True)
    _number(cfg, "data.val_writers", low=0, integer=True)
    _number(cfg, "data.val_rows", low=0, integer=True)
    _number(cfg, "data.val_fraction", low=0, high=1, high_open=True)
    _number(cfg, "optim.lr", low=0, low_open=True)
    _number(cfg, "optim.weight_decay", low=0, optional=True)
    _number(cfg, "optim.momentum", low=0, optional=True)
    _number(cfg, "trainer.max_epochs", low=1, integer=True)
    _number(cfg, "loss.label_smoothing", low=0, high=1, high_open=True)
    if cfg.loss.get("distill") and cfg.loss.distill.get("teachers"):
        _number(cfg, "loss.distill.weight", low=0, high=1, low_open=True)
    for key in ("dropout", "dropout_light"):  # dropout_light: dcnn's lighter dropouts
        if cfg.model.get(key) is not None:
            _number(cfg, f"model.{key}", low=0, high=1, high_open=True)
    if cfg.get("finetune"):
        _number(cfg, "finetune.frozen_epochs", low=0, integer=True)
        _number(cfg, "finetune.unfrozen_epochs", low=0, integer=True)
        _number(cfg, "finetune.lr_min", low=0, low_open=True)
        _number(cfg, "finetune.lr_max", low=0, low_open=True)
        frozen, unfrozen = cfg.finetune.get("frozen_epochs", 0), cfg.finetune.get("unfrozen_epochs", 0)
        if frozen + unfrozen < 1:  # together they are trainer.max_epochs (run_config.py)
            raise ConfigError(
                f"finetune.frozen_epochs={frozen} and finetune.unfrozen_epochs={unfrozen}: no epoch to train; "
                f"give one of them at least 1"
            )


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


# What the module and the train timer log, each validation set under its prefix (engine/module.py, callbacks/timing.py).
LOGGED_METRICS = (
    *(f"{stage}/{metric}" for stage in ("train", "val", "dev") for metric in ("loss", "acc")),
    "time/train_seconds",
    "time/epoch_seconds",
)


def check_scheduler(cfg: DictConfig) -> None:
    """Lightning checks these only when it configures the optimiser, and the monitor only at the
    first epoch's end: a traceback, the last one after a whole epoch of training."""
    scheduler = cfg.get("scheduler") or {}
    interval = scheduler.get("interval", "epoch")
    if interval not in ("step", "epoch"):
        raise ConfigError(f"scheduler.interval={interval}: expected step or epoch")
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
    """A dev/* metric needs the dev file: without one (dev_file found neither test_dev.csv.gz nor
    test_labelled.csv.gz) a dev_* grid would train every job and then rank none of them."""
    for key in ("optimized_metric", "leaderboard_metric"):
        check_logged(key, cfg.get(key))
    if cfg.data.get("val_file"):
        return
    for key in ("optimized_metric", "leaderboard_metric"):
        if str(cfg.get(key) or "").startswith("dev/"):
            raise ConfigError(
                f"{key}={cfg.get(key)}: no dev file to measure it on (data.val_file=null: neither test_dev.csv.gz "
                f"nor test_labelled.csv.gz in data.dir={cfg.data.get('dir')}); get them with "
                "`python -m kmnist.data.download`, pass data.val_file=PATH, or rank by val/acc"
            )


def check_options(cfg: DictConfig) -> None:
    """Raise a ConfigError naming the first option at fault; return quietly when all are sound."""
    check_value_ranges(cfg)
    check_device(cfg)
    check_combinations(cfg)
    check_scheduler(cfg)
    check_dev_metrics(cfg)
