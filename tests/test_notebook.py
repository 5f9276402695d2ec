"""The notebook front door: examples/quickstart.ipynb executed end to end in a real Jupyter
kernel (nbclient) on a tiny setting, so it cannot rot; `import kmnist` stays light."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, TEST_ROWS

TINY = [
    "model=dnn",
    "data.val_writers=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
]


def test_the_quickstart_notebook_runs_end_to_end(data_dir, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    (parameters,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    parameters.source = f"DATA = {str(data_dir)!r}\nSETTING = {TINY!r}"
    # Runs in tmp_path: outputs/ lands there. A failing cell raises CellExecutionError with its traceback.
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    images = [sum("image/png" in out.get("data", {}) for out in cell.outputs) for cell in code]
    assert images[1] == 1  # show_batch: the augmented batch, inline
    assert images[3] == 2  # show_report: curves and confusion matrix
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert (run_dir / "metrics.json").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    (submission,) = (tmp_path / "outputs" / "predict").glob("*/*/submission.csv")
    frame = pd.read_csv(submission)
    assert list(frame.columns) == ["id", "label"] and len(frame) == TEST_ROWS
    assert str(submission) in "".join(out.get("text", "") for out in code[4].outputs)


def test_import_kmnist_stays_light():
    """The notebook API loads on first use (the notebook above uses it); `import kmnist` alone loads no
    framework."""
    light = (
        "import sys, kmnist; "
        "print(sorted(m for m in ('torch', 'hydra', 'lightning') if m in sys.modules), "
        "'train' in dir(kmnist))"
    )
    done = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "True"]


def test_show_batch_augments_the_training_batch_only(data_dir, tmp_path, monkeypatch):
    import kmnist
    from kmnist.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    png = lambda augment, split: kmnist.show_batch(
        f"paths.data_dir={data_dir}", "data.val_writers=1", f"data/augment={augment}", n=16, split=split
    )._repr_png_()  # noqa: E731
    # Same rows either way (the loader's order is seeded), so only the augmentation can tell them apart.
    assert png("strong", "train") != png("none", "train")
    assert png("strong", "val") == png("none", "val")
    # Each validation set by its name; one the config lacks is one line, not an IndexError.
    dev = kmnist.show_batch(
        f"paths.data_dir={data_dir}",
        "data.val_writers=1",
        "data.val_file=${paths.dev_file}",
        n=16,
        split="dev",
    )._repr_png_()
    assert dev != png("none", "val")
    with pytest.raises(ConfigError, match=r"^split='dev': this config has no dev set \(data.val_file=null\)"):
        png("none", "dev")
    with pytest.raises(
        ConfigError,
        match=r"^split='val': this config holds out no rows \(data.split=writer, data.val_writers=0\)$",
    ):
        kmnist.show_batch(f"paths.data_dir={data_dir}", "data.val_writers=0", split="val")
    # With a dev set, not a word that data.val_file is null; the set it has is named.
    with pytest.raises(
        ConfigError,
        match=r"^split='val': .*\(data.split=writer, data.val_writers=0\); "
        r"its data.val_file set is split='dev'$",
    ):
        kmnist.show_batch(
            f"paths.data_dir={data_dir}", "data.val_writers=0", "data.val_file=${paths.dev_file}", split="val"
        )


def test_the_helpers_raise_the_users_mistake_itself(data_dir, tmp_path, monkeypatch):
    import kmnist
    from kmnist.errors import ConfigError, DataError

    monkeypatch.chdir(tmp_path)
    # Raised while Hydra instantiates the data module: the ConfigError, not Hydra's wrapper around it.
    with pytest.raises(ConfigError, match=r"^data.scaling='bogus'"):
        kmnist.show_batch(f"paths.data_dir={data_dir}", "data.val_writers=1", "data.scaling=bogus")
    with pytest.raises(ConfigError, match=r"^n=0: expected a number of images >= 1"):
        kmnist.show_batch(f"paths.data_dir={data_dir}", n=0)
    with pytest.raises(DataError, match=r"nowhere: no such run folder"):
        kmnist.show_report(tmp_path / "nowhere")
    (
        tmp_path / "quiet_run"
    ).mkdir()  # a run trained with report=false, or a figure name mistyped: said, not an empty list
    with pytest.raises(
        DataError,
        match=r"quiet_run: none of curves.png, confusion.png is there \(a run trained with report=false",
    ):
        kmnist.show_report(tmp_path / "quiet_run")
