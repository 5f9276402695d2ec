"""The notebook front door: the command line's configs as Python calls, re-exported by `kmnist`.

    import kmnist
    kmnist.show_batch("data/augment=strong")              # augmented samples, inline
    run = kmnist.train("model=cnn", "trainer.max_epochs=3")  # -> run.metrics, run.run_dir
    kmnist.show_report(run)                                # curves and confusion matrix, inline
    submission = kmnist.predict(run.best_ckpt, "test.csv.gz")  # -> a DataFrame (id, label)

Arguments are Hydra overrides, composed from the same conf/ as train.py and predict.py; each
call gets a run directory under outputs/ like the CLI's, with its .hydra/ config.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from kmnist.errors import ConfigError, DataError, user_error
from kmnist.tasks.train import TrainedRun
from kmnist.utils.atomic import atomic_write_text
from kmnist.utils.overrides import quoted

# The configs: the repository's conf/ beside this package (an editable install), or KMNIST_CONF.
CONF_DIR = Path(os.environ.get("KMNIST_CONF", Path(__file__).resolve().parents[2] / "conf"))
# What show_report shows by default: the learning curves and the confusion matrix.
REPORT_FIGURES = ("curves.png", "confusion.png")


def compose_run(config_name: str, overrides: tuple[str, ...] | list[str], record: bool = True) -> DictConfig:
    """The config the CLI would run with, and a fresh run directory (hydra.run.dir) to run in,
    holding the config in .hydra/ unless `record` is false (a preview writes nothing)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR), job_name=config_name):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    run_dir = Path(cfg.hydra.run.dir).resolve()
    for n in range(1, 1000):  # two calls within a second share a timestamp: number the second one
        if not run_dir.exists():
            break
        run_dir = run_dir.with_name(f"{Path(cfg.hydra.run.dir).name}-{n}")
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.job.name = config_name
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} (paths.output_dir) resolves against it
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    if not record:
        return job
    atomic_write_text(run_dir / ".hydra" / "config.yaml", OmegaConf.to_yaml(job))
    atomic_write_text(
        run_dir / ".hydra" / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides)))
    )
    return job


@dataclass
class Run:
    """A finished training run: its metrics (metrics.json), folder, and what trained it."""

    metrics: dict
    run_dir: Path
    trained: TrainedRun = field(repr=False)

    @property
    def best_ckpt(self) -> str | None:
        return self.metrics.get("best_ckpt")


def user_errors(helper):
    """The user's mistake itself (ConfigError, DataError, ...), not Hydra's instantiate wrapper around it:
    a notebook shows the exception's type and one line, as the entry points print it."""

    @functools.wraps(helper)
    def run(*args, **kwargs):
        try:
            return helper(*args, **kwargs)
        except Exception as err:
            if (cause := user_error(err)) is None or cause is err:
                raise
            raise cause from None

    return run


@user_errors
def train(*overrides: str) -> Run:
    """`python train.py OVERRIDES...` in this process: fit, validate, report; returns the Run."""
    from kmnist.tasks.train import train as train_task

    metrics, trained = train_task(compose_run("config", overrides))
    return Run(metrics, trained.output_dir, trained)


@user_errors
def predict(ckpt, input=None, *overrides: str) -> pd.DataFrame:
    """`python predict.py ckpt=CKPT input=INPUT OVERRIDES...`: the submission (id, label) as a
    DataFrame; `.attrs` holds the job's result (the CSV's path, accuracy for a labelled input)."""
    from kmnist.tasks.predict import predict as predict_task

    options = [
        f"ckpt={quoted(ckpt)}",
        *([f"input={quoted(input)}"] if input is not None else []),
        "progress=false",
    ]
    result = predict_task(compose_run("predict", [*options, *overrides]))
    submission = pd.read_csv(result["output"])
    submission.attrs.update(result)
    return submission


class Picture:
    """A matplotlib figure Jupyter shows inline as a PNG, whatever backend is active."""

    def __init__(self, figure):
        self.figure = figure

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        from kmnist.report.files import save_figure

        return save_figure(self.figure, path)


@user_errors
def show_batch(*overrides: str, n: int = 36, split: str = "train") -> Picture:
    """`n` images of a batch exactly as the network receives them (augmented for `train`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n={n!r}: expected a number of images >= 1")
    if split not in ("train", "val", "dev"):
        raise ConfigError(
            f"split={split!r}: expected 'train', 'val' (the held-out writers) or 'dev' (data.val_file)"
        )
    import torch
    from hydra.utils import instantiate

    from kmnist.report.batch import batch_figure
    from kmnist.tasks.train import network_input

    cfg = compose_run("config", overrides, record=False)
    datamodule = instantiate(cfg.data, **network_input(cfg))  # sized for the network, as train() does
    datamodule.setup("fit")
    if split == "train":
        loader = datamodule.train_dataloader()
    elif split in datamodule.val_set_names:
        loader = datamodule.val_dataloader()[list(datamodule.val_set_names).index(split)]
    elif split == "val":  # the share held out is data.split's own option
        share = {"writer": "val_writers", "stratified": "val_fraction", "first_n": "val_rows"}.get(
            datamodule.split, "val_writers"
        )
        raise ConfigError(
            f"split='val': this config holds out no rows (data.split={datamodule.split}, data.{share}=0)"
            + ("; its data.val_file set is split='dev'" if "dev" in datamodule.val_set_names else "")
        )
    else:
        raise ConfigError(f"split={split!r}: this config has no dev set (data.val_file=null)")
    with torch.random.fork_rng():  # a preview must not move the global RNG a later train() starts from
        images, labels = next(iter(loader))
        images, labels, *_ = datamodule.transform((images[:n], labels[:n]), train=split == "train")
    return Picture(
        batch_figure(
            images.float(), labels, n=n, title=f"{split} batch as the network sees it ({cfg.model.name})"
        )
    )


def show_report(run: Run | str | os.PathLike, figures: tuple[str, ...] = REPORT_FIGURES) -> list[Path]:
    """Display a run's report figures inline (in Jupyter); returns their paths."""
    run_dir = Path(run.run_dir if isinstance(run, Run) else run)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run folder (pass a Run, or a folder under outputs/runs/)")
    paths = [run_dir / name for name in figures if (run_dir / name).is_file()]
    if not paths:  # an empty answer would look like a report with nothing in it
        raise DataError(
            f"{run_dir}: none of {', '.join(figures)} is there (a run trained with report=false writes no "
            f"figures; figures=... takes names from {', '.join(REPORT_FIGURES)})"
        )
    try:
        from IPython.display import Image, display
    except ImportError:  # plain Python: the paths are the answer
        return paths
    for path in paths:
        display(Image(filename=str(path)))
    return paths
