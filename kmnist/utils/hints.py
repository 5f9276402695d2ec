"""After Hydra rejects an override, name the closest valid key: `trainer.max_epoch=3` gets
"did you mean trainer.max_epochs?". Hydra's own message is printed first and kept as is."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "conf"


def config_keys(node, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    keys = []
    for key in node.keys() if isinstance(node, DictConfig) else []:
        if str(key).startswith("_"):  # _target_, _partial_: not settings a user means
            continue
        path = f"{prefix}{key}"
        keys.append(path)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            keys.extend(config_keys(child, f"{path}."))
    return keys


def group_option_hints(groups: list[str]) -> tuple[list[str], list[str]]:
    """`did you mean` lines for group choices naming no file in conf/ (model=cnnn, callbacks=[default,emaa]),
    and the group choices that do (the others would fail the compose, and every key hint with it)."""
    hints, sound = [], []
    for override in groups:
        group, value = override.split("=", 1)
        if (
            group.startswith("hydra") or "(" in value
        ):  # launchers come from plugins; sweep functions are not names
            sound.append(override)
            continue
        names = [name.strip().strip("'\"") for name in value.strip("[]").split(",") if name.strip()]
        missing = [name for name in names if name != "null" and not (CONF / group / f"{name}.yaml").is_file()]
        options = sorted(path.stem for path in (CONF / group).glob("*.yaml"))
        for name in missing:
            if close := difflib.get_close_matches(name, options, n=1, cutoff=0.6):
                hints.append(f"hint: {group}={name}: no such option; did you mean {group}={close[0]}?")
        if not missing:
            sound.append(override)
    return hints, sound


def unknown_key_hints(config_name: str, argv: list[str]) -> list[str]:
    """`did you mean` lines for the overrides in argv whose key the composed config lacks."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    # Group choices (model=dnn) change which keys exist; compose with them, and only them.
    choices = [
        a for a in overrides if (CONF / a.split("=", 1)[0]).is_dir()
    ]  # data/augment=deform: a choice, not a key
    hints, groups = group_option_hints(choices)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name=config_name, overrides=groups)
    known = config_keys(cfg)
    for override in overrides:
        key = override.split("=", 1)[0]
        if key.startswith(("+", "~", "hydra")) or key in known or override in choices:
            continue
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            if close:
                hints.append(f"hint: {key!r} is not a config key; did you mean {close[0]}?")
    return hints


def _print_hints(config_name: str) -> None:
    try:
        for hint in unknown_key_hints(config_name, sys.argv[1:]):
            print(hint, file=sys.stderr)
    except Exception:  # the hint is a courtesy: never mask Hydra's own error
        pass


def run_with_hints(main: Callable[[], object], config_name: str) -> None:
    try:
        main()
    except SystemExit as exit_:  # Hydra reports the error, then exits 1
        if exit_.code not in (0, None, 143):  # 143: stopped by SIGTERM after saving, no mistake to hint at
            _print_hints(config_name)
        raise
    except Exception:  # with HYDRA_FULL_ERROR=1 the exception itself propagates
        _print_hints(config_name)
        raise
