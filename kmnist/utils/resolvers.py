"""Config resolvers kmnist's configs use, registered once when the package is imported.

`${first_file:DIR,NAME,...}`: DIR/NAME for the first NAME that exists there, else null. The recipes
validate on the test cohort wherever the data came from: the Kaggle layout here ships
`test_dev.csv.gz` (4 test writers), the downloader writes `test_labelled.csv.gz` (all 8), and a
folder with neither (Kaggle's own files) validates on held-out training writers alone.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


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
