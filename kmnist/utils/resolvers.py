"""Config resolvers kmnist's configs use, registered once when the package is imported.

`${first_file:DIR,NAME,...}`: DIR/NAME for the first NAME that exists there, else null. The recipes
validate on the test cohort wherever the data came from: the Kaggle layout here ships
`test_dev.csv.gz` (4 test writers), the downloader writes `test_labelled.csv.gz` (all 8), and a
folder with neither (Kaggle's own files) validates on held-out training writers alone.

`${metric_mode:METRIC}` (min / max, for Lightning's callbacks) and `${metric_direction:METRIC}`
(minimize / maximize, for Optuna): `optimized_metric=val/loss` is minimised everywhere.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from kmnist.utils.metrics import lower_is_better


def first_file(folder: str, *names: str) -> str | None:
    for name in names:
        if (path := Path(folder) / name).is_file():
            return str(path)
    return None


def register_resolvers() -> None:
    # Registered on import of the package (not in train.py) so that every entry point, a notebook, the
    # tests' compose() and a saved config reloaded on resume all resolve the same names.
    if not OmegaConf.has_resolver("first_file"):
        OmegaConf.register_new_resolver("first_file", first_file)
    if not OmegaConf.has_resolver("metric_mode"):
        OmegaConf.register_new_resolver(
            "metric_mode", lambda metric: "min" if lower_is_better(metric) else "max"
        )
    if not OmegaConf.has_resolver("metric_direction"):
        OmegaConf.register_new_resolver(
            "metric_direction", lambda metric: "minimize" if lower_is_better(metric) else "maximize"
        )
