"""Config keys that moved and still work, each with a one-line note naming the new key."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("kmnist")

# data.dir is an interpolation of paths.data_dir; any other value was set by the user as data.dir=.
DATA_DIR_DEFAULT = "${paths.data_dir}"


def apply_deprecated_keys(cfg: DictConfig) -> None:
    """`data.dir=PATH` (the data folder's key before paths.data_dir) still picks the data folder:
    paths.data_dir takes its value, so paths.dev_file and every path built on it follow."""
    data, paths = cfg.get("data"), cfg.get("paths")
    if not OmegaConf.is_dict(data) or not OmegaConf.is_dict(paths) or "dir" not in data:
        return
    if OmegaConf.to_container(data, resolve=False).get("dir") == DATA_DIR_DEFAULT:
        return
    folder = data.dir
    log.warning(
        f"data.dir is deprecated: use paths.data_dir={folder} (train, predict and the pipeline read it)"
    )
    paths.data_dir = folder
    data.dir = DATA_DIR_DEFAULT
