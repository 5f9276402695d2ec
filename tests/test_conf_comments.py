"""conf/ is the API: its comments say what an option does and why, briefly, and a measured figure
there names the bench/ file or finding it comes from (figures go stale; the reference shows where)."""

from __future__ import annotations

import re

import pytest
from conftest import CONF, ROOT

# Prose lines per block of comments (example commands, "#   python ...", are not prose): an option's
# comment is short; a file's header, the block before its first key, may say a little more.
MAX_PROSE_LINES, MAX_HEADER_LINES = 3, 6
# A measured figure: an accuracy, a time, a speed-up or a spread (not a setting such as "20% validation").
FIGURE = re.compile(r"\d+\.\d+\s*%|\d[\d.,]*\s*(ms|s|min|h)\b|\d[\d.]*x (faster|slower)|± ?\d")


def comment_blocks(text: str) -> list[list[str]]:
    """Runs of consecutive comment lines; a trailing comment (`key: value  # ...`) is a block of one."""
    blocks, block = [], []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped)
            continue
        if block:
            blocks.append(block)
            block = []
        if " #" in line and not stripped.startswith(("'", '"')):
            blocks.append([line.split(" #", 1)[1].strip()])
    return blocks + ([block] if block else [])


def check(text: str) -> list[str]:
    problems = []
    for n, block in enumerate(comment_blocks(text)):
        prose = [line for line in block if not line.startswith(("#   ", "# @package"))]
        header = n == 0 and text.lstrip().startswith("#")
        if len(prose) > (MAX_HEADER_LINES if header else MAX_PROSE_LINES):
            problems.append(f"{len(prose)} lines of comment: {prose[0][:60]}")
        joined = " ".join(block)
        if FIGURE.search(joined) and "bench/" not in joined:
            problems.append(
                f"a figure without a bench/ reference: {FIGURE.search(joined).group(0)!r} in {joined[:80]}"
            )
        if re.search(r"\bsessions?\b", joined, re.IGNORECASE):
            problems.append(f"work-period wording: {joined[:80]}")
    return problems


def test_the_checker_finds_long_blocks_and_unreferenced_figures():
    text = (
        "# header\nkey: 0\n# one\n# two\n# three\n# four\nkey: 1\nother: 2   # 98.5% on dev\n"
        "third: 3  # 2x faster (bench/x.json)\nfourth: 4  # 20% stratified validation\n"
    )
    assert check(text) == [
        "4 lines of comment: # one",
        "a figure without a bench/ reference: '98.5%' in 98.5% on dev",
    ]


@pytest.mark.parametrize("path", sorted(CONF.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONF)))
def test_conf_comments_are_short_and_figures_referenced(path):
    assert check(path.read_text()) == []


def test_every_bench_file_a_comment_cites_exists():
    cited = {
        match.rstrip(".,:;")
        for path in CONF.rglob("*.yaml")
        for match in re.findall(r"bench/[\w./*-]+", path.read_text())
    }
    missing = sorted(ref for ref in cited if not list(ROOT.glob(ref)))
    assert cited and missing == []
