"""Shared fixtures: a small real data folder and the real Hydra config, shrunk for CPU tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from kmnist.data.io import DigitTable, read_digits, table_to_frame
from kmnist.utils.atomic import atomic_write_csv

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED = Path(os.environ.get("KMNIST_DATA", ROOT.parent / "shared" / "data" / "kannada_mnist"))
TRAIN_ROWS = 3840  # three writers of 1,280 rows: enough for a writer split with one held out
TEST_ROWS = 600
DEV_ROWS = 400
DIG_ROWS = 300


def synthetic_digits(n: int, seed: int = 0) -> DigitTable:
    """Learnable stand-in digits (a bar per class plus noise), used only when the real data is absent."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 5 + 2 * label, 4:24] = 255
    return DigitTable(images=images, labels=labels.astype(np.int64))


def pytest_configure(config):
    """Under pytest-xdist (README's `-n 2`) each worker gets its share of the cores: two workers
    with every core each would oversubscribe them. train.py subprocesses and DDP ranks inherit it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch

        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# Test files whose tests carry `pytestmark = pytest.mark.xdist_group(...)`.
GROUPED_FILES = ("test_slurm.py", "test_torchrun.py")


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, run by the controller once per worker
def pytest_xdist_node_collection_finished(node, ids):
    """`--dist loadgroup` must keep an `xdist_group` in one worker: the SLURM tests share one
    cluster, and a second worker starting it stops the first's jobs. pytest-xdist marks a grouped
    test by suffixing its node id with `@GROUP`; on pytest 9.2 (node ids moved) xdist 3.8 cannot,
    and the groups were silently ignored (hence `pytest<9.2` in pyproject.toml). Say so here
    rather than through a SLURM test that fails now and then."""
    if node.config.getoption("dist") != "loadgroup":
        return
    untagged = [i for i in ids if i.split("::")[0].endswith(GROUPED_FILES) and "@" not in i]
    if untagged:
        raise pytest.UsageError(
            f"pytest-xdist did not apply xdist_group to {untagged[0]} (pytest {pytest.__version__}): "
            f"--dist loadgroup would split the group across workers; use pytest<9.2"
        )


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> Path:
    """Every pytest session parses into its own cache, never the user's ~/.cache/kmnist."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["KMNIST_CACHE"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A folder in the real layout: the first writers of the real train.csv.gz and the first
    rows of test.csv.gz when KMNIST_DATA holds them, synthetic digits otherwise."""
    out = tmp_path_factory.mktemp("kannada_mnist")
    if (SHARED / "train.csv.gz").is_file():
        train = read_digits(SHARED / "train.csv.gz")
        test = read_digits(SHARED / "test.csv.gz")
        train = DigitTable(images=train.images[:TRAIN_ROWS], labels=train.labels[:TRAIN_ROWS])
        test = DigitTable(images=test.images[:TEST_ROWS], ids=test.ids[:TEST_ROWS])
    else:
        train = synthetic_digits(TRAIN_ROWS)
        test = DigitTable(images=synthetic_digits(TEST_ROWS, seed=1).images, ids=np.arange(TEST_ROWS) + 7)
    atomic_write_csv(table_to_frame(train), out / "train.csv.gz")
    atomic_write_csv(table_to_frame(test), out / "test.csv.gz")
    # The test cohort's labelled writers (test_dev.csv.gz): the first real rows, else synthetic.
    if (SHARED / "test_dev.csv.gz").is_file():
        dev = read_digits(SHARED / "test_dev.csv.gz")
        dev = DigitTable(images=dev.images[:DEV_ROWS], labels=dev.labels[:DEV_ROWS], ids=dev.ids[:DEV_ROWS])
    else:
        dev = synthetic_digits(DEV_ROWS, seed=2)
        dev.ids = np.arange(DEV_ROWS)
    atomic_write_csv(table_to_frame(dev), out / "test_dev.csv.gz")
    # Dig-MNIST: unlabelled, with its own ids.
    if (SHARED / "dig.csv.gz").is_file():
        dig = read_digits(SHARED / "dig.csv.gz")
        dig = DigitTable(images=dig.images[:DIG_ROWS], ids=dig.ids[:DIG_ROWS])
    else:
        dig = DigitTable(images=synthetic_digits(DIG_ROWS, seed=3).images, ids=np.arange(DIG_ROWS) + 11)
    atomic_write_csv(table_to_frame(dig), out / "dig.csv.gz")
    # A labelled file, as the downloader writes for the official test set.
    labelled = DigitTable(images=train.images[:500], labels=train.labels[:500], ids=np.arange(500))
    atomic_write_csv(table_to_frame(labelled), out / "test_labelled.csv.gz")
    return out


def shrink(cfg: DictConfig, output_dir: Path) -> None:
    """A few CPU steps, no progress bar, outputs under tmp."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
        cfg.trainer.accelerator = "cpu"
        cfg.trainer.max_epochs = 1
        cfg.trainer.limit_train_batches = 6
        cfg.trainer.limit_val_batches = 2
        cfg.trainer.log_every_n_steps = 1
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.enable_model_summary = False
        cfg.callbacks.pop("progress_bar", None)
        cfg.data.batch_size = 32
        cfg.data.eval_batch_size = 256


@pytest.fixture
def compose_train(data_dir, tmp_path):
    """compose_train(*overrides) -> the real training config, shrunk, with HydraConfig set."""

    def _compose(*overrides: str) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
            cfg = compose(
                config_name="config",
                return_hydra_config=True,
                overrides=[f"paths.data_dir={data_dir}", "data.val_writers=1", *overrides],
            )
        shrink(cfg, tmp_path)
        HydraConfig().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(script: str, *args: str, cwd: Path, timeout: int = 600):
    """Run train.py / predict.py as a user would, in a subprocess."""
    import subprocess

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def one_process_slice(data_dir, tmp_path_factory) -> Path:
    """The run directory of one process on the DDP equivalence setting (tests/scale_out.py): what
    torchrun and SLURM's DDP jobs must equal. Run once per pytest session."""
    from scale_out import run_dirs, slice_args

    log_dir = tmp_path_factory.mktemp("one_process")
    done = run_cli("train.py", *slice_args(data_dir, f"paths.log_dir={log_dir}"), cwd=log_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    [run_dir] = run_dirs(log_dir)
    return run_dir
