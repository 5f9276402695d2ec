"""docs/OPTIONS.md, rendered from the options declared in `engine/schema.py`:

python -m kmnist.engine.options_doc           # print it
python -m kmnist.engine.options_doc --write   # write docs/OPTIONS.md (tests/test_schema.py fails when stale)
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kmnist.engine.schema import CHOICE, INTEGER, INTEGERS, NUMBER, OPTIONS, Option

DOC = Path(__file__).resolve().parents[2] / "docs" / "OPTIONS.md"
ABSENT = object()  # what `unresolved` returns for a key the config lacks


def composed_defaults(options: tuple[Option, ...]) -> dict[str, DictConfig]:
    """The composed training config (unresolved) for each option's `source`: "" is the default one."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from kmnist.utils.hints import CONF

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        configs = {
            source: compose(config_name="config", overrides=[source] if source else [])
            for source in dict.fromkeys(option.source for option in options)
        }
    GlobalHydra.instance().clear()
    return configs


def unresolved(cfg: DictConfig, key: str):
    """`key`'s value as the config spells it (an interpolation stays `${...}`), or ABSENT."""
    node = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def _shown(value) -> str:
    if value is ABSENT:
        return ""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "`" + text.replace("|", "\\|") + "`"


def _allowed(option: Option) -> str:
    if option.kind == CHOICE:
        return " \\| ".join(f"`{c}`" for c in option.choices)
    if option.kind == INTEGERS:
        return "each >= 1"
    if option.kind in (INTEGER, NUMBER) and (option.low is not None or option.high is not None):
        return option.span()
    return ""


def render(options: tuple[Option, ...] = OPTIONS) -> str:
    """docs/OPTIONS.md: a table per config section, in the order options are declared."""
    configs = composed_defaults(options)
    lines = [
        "# Training options",
        "",
        "Generated from `kmnist/engine/schema.py` by `python -m kmnist.engine.options_doc --write`: edit",
        "the declarations there, not this file. `train.py` refuses a value out of its type or range before",
        "anything is built, in one line naming `option=value`. Defaults are the composed `conf/config.yaml`",
        "(or the named group choice, where the option comes with it); rules between options are code in",
        "`kmnist/engine/options.py`.",
    ]
    section = None
    for option in options:
        head = option.key.partition(".")[0] if "." in option.key else "top level"
        if head != section:
            section = head
            lines += [
                "",
                f"## {section}",
                "",
                "| option | type | range | default | meaning |",
                "|---|---|---|---|---|",
            ]
        kind = option.kind if option.kind != INTEGERS else "list of integers"
        kind += " or null" if option.optional else ""
        default = _shown(unresolved(configs[option.source], option.key))
        default += f" ({option.source})" if option.source and default else ""
        meaning = option.meaning + (f"; checked when `{option.when}` is set" if option.when else "")
        lines.append(f"| `{option.key}` | {kind} | {_allowed(option)} | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--write"]:
        from kmnist.utils.atomic import atomic_write_text

        atomic_write_text(DOC, text)
        print(f"wrote {DOC}")
    elif argv:
        print(
            "usage: python -m kmnist.engine.options_doc [--write]  (--write: into docs/OPTIONS.md)",
            file=sys.stderr,
        )
        return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
