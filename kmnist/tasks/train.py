"""Train one model from a composed Hydra config: the body of `train.py`.

Shape after lightning-hydra-template's `src/train.py`: seed, instantiate data / network /
module / callbacks / loggers / trainer from the config, fit, validate the best checkpoint,
write `metrics.json`, return the metrics (the sweep optimises `cfg.optimized_metric`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf, open_dict

from kmnist.callbacks.finetune import FineTuneStages
from kmnist.data.datamodule import KannadaMNISTDataModule
from kmnist.data.prompt import ensure_data
from kmnist.engine import distributed
from kmnist.engine.distill import TeacherEnsemble
from kmnist.engine.graphed_module import GraphedClassifier
from kmnist.engine.lr_find import find_lr
from kmnist.engine.module import Classifier
from kmnist.engine.options import check_options
from kmnist.engine.resumable import check_resume_checkpoint
from kmnist.engine.run_config import derive_run_config, plain_config, write_derived
from kmnist.errors import CheckpointError, ConfigError
from kmnist.models import build_network, input_spec
from kmnist.tasks.tracking import finish_trackers, log_run_files, require_trackers
from kmnist.utils.atomic import write_json
from kmnist.utils.deprecated_keys import apply_deprecated_keys
from kmnist.utils.lists import as_list

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list:
    """Callbacks and loggers are dicts of configs (one file each); build those with a _target_."""
    if not group:
        return []
    return [
        instantiate(item) for item in group.values() if isinstance(item, DictConfig) and "_target_" in item
    ]


def resolve_ckpt_path(value: str | None, log_dir: Path) -> str | None:
    """`ckpt_path` may be a .ckpt file, a run directory (its checkpoints/last.ckpt), or `last`:
    the newest last.ckpt of any run under outputs/runs, so `ckpt_path=last` continues the latest run."""
    if not value:
        return None
    path = Path(value)
    if value == "last":
        candidates = sorted(log_dir.glob("runs/*/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise CheckpointError(
                f"ckpt_path=last: no run under {log_dir / 'runs'} has a checkpoints/last.ckpt to resume"
            )
        return str(candidates[-1])
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={value}: no checkpoint at {path}")
    return str(path)


def build_module(cfg: DictConfig) -> Classifier:
    """The LightningModule around the configured network: GraphedClassifier under speed.cuda_graph."""
    scheduler = instantiate(cfg.scheduler.fn) if cfg.scheduler.get("fn") else None
    net = build_network(OmegaConf.to_container(cfg.model, resolve=True))
    if cfg.speed.channels_last:
        net = net.to(memory_format=torch.channels_last)  # the data module sends channels_last batches too
    if cfg.speed.compile:
        # In place, so state_dict keys (and checkpoints) stay those of the plain network. compile=true
        # is torch.compile's default mode; a string picks a mode ("reduce-overhead": CUDA graphs).
        net.compile(mode=cfg.speed.compile if isinstance(cfg.speed.compile, str) else None)
    module_class = GraphedClassifier if cfg.speed.cuda_graph else Classifier
    return module_class(
        net=net,
        optimizer=instantiate(cfg.optim),
        scheduler=scheduler,
        scheduler_interval=cfg.scheduler.interval,
        scheduler_monitor=cfg.scheduler.get("monitor"),
        label_smoothing=cfg.loss.label_smoothing,
        finetune=OmegaConf.to_container(cfg.finetune, resolve=True) if cfg.get("finetune") else None,
        config=plain_config(cfg),
        teacher=build_teacher(cfg),
    )


def build_teacher(cfg: DictConfig) -> TeacherEnsemble | None:
    """loss.distill.teachers: checkpoints whose averaged predictions teach this network."""
    distill = cfg.loss.get("distill")
    if not distill or not distill.get("teachers"):
        return None
    student_inputs = {"scaling": cfg.data.scaling, **network_input(cfg)}
    return TeacherEnsemble(as_list(distill.teachers), weight=distill.weight, student_inputs=student_inputs)


def network_input(cfg: DictConfig) -> dict:
    """The configured network's input spec, as the data module's keyword arguments."""
    return asdict(input_spec(OmegaConf.to_container(cfg.model, resolve=True)))


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> pl.Trainer:
    """Lightning's Trainer from `cfg.trainer`; a value Lightning refuses (trainer.precision=bogus,
    trainer.devices=abc, an unknown key) is one line naming `trainer`, not Hydra's wrapped traceback."""
    try:
        return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    except InstantiationException as err:
        if isinstance(err.__cause__, (TypeError, ValueError, ImportError, MisconfigurationException)):
            raise ConfigError(f"trainer: {err.__cause__}") from err.__cause__
        raise


@dataclass
class TrainedRun:
    """What `train` built, for callers that look further than the metrics (tests, notebooks)."""

    cfg: DictConfig  # the config the run ran with (composed + derived.yaml)
    output_dir: Path
    datamodule: KannadaMNISTDataModule
    module: Classifier
    trainer: pl.Trainer


def train(cfg: DictConfig) -> tuple[dict, TrainedRun]:
    """Fit, validate the best checkpoint, report; returns metrics.json's contents and the run.
    `cfg` is read, never edited (but for a deprecated key moved to its new place): what follows
    from it is derived into a copy (`derived.yaml`)."""
    apply_deprecated_keys(cfg)  # data.dir= from before paths.data_dir: a note, then the same run
    check_options(cfg)
    require_trackers(cfg.get("logger"))  # a missing optional tracker fails before any work
    pl.seed_everything(cfg.seed, workers=True)
    # TF32 for float32 matmuls/convs on tensor-core GPUs (bf16-mixed runs mostly avoid fp32 anyway).
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule: KannadaMNISTDataModule = instantiate(cfg.data, **network_input(cfg))
    ensure_data(datamodule.path(datamodule.train_file))
    cfg, derived = derive_run_config(cfg, datamodule.val_set_names, datamodule.holds_out_validation)
    with open_dict(cfg):  # resolved once, before any other rank starts: every rank resumes from the same file
        cfg.ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), Path(cfg.paths.log_dir))
    if cfg.ckpt_path:
        check_resume_checkpoint(cfg.ckpt_path, cfg)
    if pl.utilities.rank_zero_only.rank == 0:
        inputs = {
            "data.train_file": datamodule.path(datamodule.train_file),
            "data.val_file": datamodule.path(datamodule.val_file) if datamodule.val_file else None,
            **{
                f"data.extra_train[{i}]": datamodule.path(name)
                for i, name in enumerate(datamodule.extra_train)
            },
            "ckpt_path": cfg.ckpt_path,
        }
        write_derived(
            derived,
            output_dir / "derived.yaml",
            {k: str(Path(v).resolve()) if v else None for k, v in inputs.items()},
        )

    module = build_module(cfg)
    distributed.cpu_without_sync_batchnorm(cfg, module)
    callbacks = instantiate_group(cfg.get("callbacks"))
    if cfg.get("finetune"):
        callbacks.append(FineTuneStages(cfg.finetune.frozen_epochs))
    if not cfg.trainer.get("enable_progress_bar", True):  # else Lightning refuses the bar callback
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = instantiate_group(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks, loggers)
    datamodule.per_process_batch_size(trainer.world_size)  # one clear line before any process starts

    metrics: dict = {}
    # DDP: every rank runs this block (fit and validate are collective); the rest is rank 0's.
    with distributed.ranks(trainer, cfg):
        if cfg.tune.lr_find:
            metrics["lr_find/suggestion"] = find_lr(cfg, trainer, module, datamodule, output_dir)

        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        train_seconds = time.perf_counter() - start

        best_ckpt = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if cfg.validate_best and best_ckpt:
            for loader_metrics in trainer.validate(
                module, datamodule=datamodule, ckpt_path=best_ckpt, verbose=False
            ):
                metrics.update(loader_metrics)  # one dict per validation set (val/*, dev/*)
        else:
            metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    metrics = {k: float(v) if isinstance(v, (int, float, torch.Tensor)) else v for k, v in metrics.items()}
    metrics.update(
        best_ckpt=os.path.abspath(best_ckpt) if best_ckpt else None,
        train_seconds=round(train_seconds, 2),
        epochs=trainer.current_epoch,
        model=cfg.model.name,
        # What this run's sweep ranks by, as the run resolved it (report/sweep_jobs.py reads it).
        optimized_metric=cfg.optimized_metric,
        leaderboard_metric=cfg.get("leaderboard_metric") or cfg.optimized_metric,
    )

    if trainer.is_global_zero:
        if cfg.get("report", True) and not trainer.fast_dev_run:
            from kmnist.report.run_report import write_run_report  # matplotlib only when reporting

            metrics.update(write_run_report(trainer, module, datamodule, output_dir, title=run_title(cfg)))
        write_json(output_dir / "metrics.json", metrics)
        log_run_files(trainer.loggers, output_dir, metrics)  # after the report and metrics.json exist
        score = metrics.get(cfg.optimized_metric)
        epochs = trainer.current_epoch
        dev = (
            f", dev/acc = {metrics['dev/acc']:.4f}"
            if cfg.optimized_metric != "dev/acc" and isinstance(metrics.get("dev/acc"), float)
            else ""
        )
        log.info(
            "%s = %s%s after %d epoch%s (%.1f s); best checkpoint: %s",
            cfg.optimized_metric,
            f"{score:.4f}" if isinstance(score, float) else score,
            dev,
            epochs,
            "" if epochs == 1 else "s",
            train_seconds,
            metrics["best_ckpt"],
        )
    finish_trackers(trainer.loggers)
    return metrics, TrainedRun(cfg, output_dir, datamodule, module, trainer)


def run_title(cfg: DictConfig) -> str:
    """What a plot's title says of the run: the model and the overrides that made it."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = " ".join(HydraConfig.get().overrides.task)
    except ValueError:  # no Hydra context (a plain function call)
        overrides = ""
    return f"{cfg.model.name}  {overrides}".strip()[:120]
