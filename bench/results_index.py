"""Writes bench/results/README.md, the index of every result under bench/results/: its file, what it
measures, its headline figures, the command, the machine and the date, grouped by benchmark, newest first.

    python bench/results_index.py            # (re)write bench/results/README.md
    python bench/results_index.py --check    # exit 1 if it is out of date or a file breaks the scheme

Every result is named `<what>_<machine>_<date>.<ext>` (ext: json, md or txt), where `what` starts with
its benchmark's name, `machine` is a slug as benchmeta.py makes (cpu2-avx2, cpu2-bf16, h100) and `date`
is the day it was produced. It carries `command`, `machine` and `date`: a JSON file in a top-level
`meta`, a markdown or text file on its first line (`<!-- meta: {...} -->` or `meta: {...}`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
INDEX = RESULTS / "README.md"
# benchmarks without a script of their own: the pipeline's tables and StepProfiler's reports
OTHER_BENCHMARKS = {
    "pipeline": "`python -m kmnist.tasks.pipeline`: dev accuracy of each stage",
    "profile": "`StepProfiler` (kmnist/callbacks/profiling.py): where a training step's time goes",
}
NOT_BENCHMARKS = {"benchmeta", "results_index", "submission_counts"}
MACHINE = r"cpu\d+(?:-(?:avx2|avx512|bf16))?|(?:\d+x)?(?:gpu|[a-z]+-?\d+[a-z0-9]*(?:-[a-z0-9]+)*)"
NAME = re.compile(
    rf"^(?P<what>[a-z0-9]+(?:_[a-z0-9]+)*)_(?P<machine>{MACHINE})_(?P<date>\d{{4}}-\d{{2}}-\d{{2}})"
    r"\.(?P<ext>json|md|txt)$"
)
# a work-period label in a name (spelt with a class, so that `git grep -w` finds no such label here)
WORK_PERIOD = re.compile(r"sessi[o]n", re.IGNORECASE)
TEXT_META = re.compile(r"^(?:<!-- )?meta: (\{.*\})(?: -->)?$")


def benchmarks() -> dict[str, str]:
    """Benchmark name -> what it measures (the first line of its script's docstring)."""
    found = dict(OTHER_BENCHMARKS)
    for script in sorted(BENCH.glob("*.py")):
        if script.stem not in NOT_BENCHMARKS:
            doc = re.search(r'^"""(.+?)(?:\n\n|\.\s|""")', script.read_text(), flags=re.MULTILINE | re.DOTALL)
            first = " ".join(doc.group(1).split()) if doc else ""
            found[script.stem] = f"`bench/{script.name}`: {first}"
    return found


def read(path: Path) -> tuple[dict, object]:
    """(meta, body) of a result: body is the JSON's data or the file's text after the meta line."""
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        meta = data.pop("meta", None) if isinstance(data, dict) else None
        return meta or {}, data
    first, _, rest = text.partition("\n")
    match = TEXT_META.match(first)
    return (json.loads(match.group(1)) if match else {}), (rest if match else text)


def problems(results: Path = RESULTS) -> list[str]:
    """One line per file under `results` that breaks the naming scheme or lacks its meta."""
    found, names = [], benchmarks()
    for path in sorted(results.iterdir()):
        if path.name == "README.md":
            continue
        match = NAME.match(path.name)
        if not match or path.is_dir():
            found.append(
                f"{path.name}: not <what>_<machine>_<date>.json|md|txt (machine like cpu2-avx2, h100)"
            )
            continue
        if WORK_PERIOD.search(path.name):
            found.append(f"{path.name}: names a work period; date it instead")
        if group(match["what"], names) is None:
            found.append(
                f"{path.name}: '{match['what']}' starts with no benchmark's name ({', '.join(names)})"
            )
        try:
            datetime.date.fromisoformat(match["date"])
        except ValueError:
            found.append(f"{path.name}: {match['date']} is not a date")
        try:
            meta, _ = read(path)
        except (ValueError, UnicodeDecodeError) as err:
            found.append(f"{path.name}: unreadable ({err})")
            continue
        missing = [key for key in ("command", "machine", "date") if not meta.get(key)]
        if missing:
            found.append(f"{path.name}: meta lacks {', '.join(missing)}")
            continue
        for key in ("machine", "date"):
            if meta[key] != match[key]:
                found.append(f"{path.name}: meta {key} {meta[key]!r} differs from the name's {match[key]!r}")
    return found


def group(what: str, names) -> str | None:
    fits = [name for name in names if what == name or what.startswith(name + "_")]
    return max(fits, key=len) if fits else None


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def headline(bench: str, body) -> str:
    """The figure(s) a reader looks for first; '' where there is no easy one."""
    if isinstance(body, str):
        if bench == "profile":
            step = re.search(r"([\d.]+ ms per step)", body)
            return f"host {step.group(1)}" if step else ""
        rows = [line.split("|")[1:-1] for line in body.splitlines() if line.startswith("| ")]
        if rows and "dev acc %" in [c.strip() for c in rows[0]]:
            col = [c.strip() for c in rows[0]].index("dev acc %")
            cells = [f"{r[0].strip()} {r[col].strip()}" for r in rows[1:] if not set(r[0]) <= set("-: ")]
            return "dev acc % by stage (pseudo and distilled stages transductive): " + ", ".join(cells)
        return ""
    if bench == "tta_views":
        sets = {s["set"]: s for s in body["sets"]}
        n = len(body.get("checkpoints", []))
        parts = []
        for name in ("none", "affine"):
            if name in sets:
                s = sets[name]
                alone = f"{pct(s['alone_mean'])} ± {100 * s['alone_std']:.2f}"
                parts.append(f"{name}: each {alone}, ensemble {pct(s['ensemble'])}")
        return f"dev, {n} networks: " + "; ".join(parts)
    if bench == "throughput":
        rows = body["rows"]
        model = "kresnet" if any(r["model"] == "kresnet" for r in rows) else rows[0]["model"]
        mine = [r for r in rows if r["model"] == model]
        train = max(mine, key=lambda r: r["train_img_s"])
        infer = max(mine, key=lambda r: r["infer_img_s"])
        return (
            f"{model}: train {train['train_img_s']:,.0f} img/s (batch {train['batch_size']}), "
            f"infer {infer['infer_img_s']:,.0f} img/s (batch {infer['batch_size']}); {len(rows)} rows"
        )
    if bench == "time_to_accuracy":
        metric = body.get("metric", "val/acc")
        final = body.get("mean_final", body.get("mean_final_val_acc"))
        where = "held-out training writers" if metric == "val/acc" else "dev writers"
        runs = len(body["runs"])
        process = f", {body['process_seconds']} s process" if "process_seconds" in body else ""
        return f"final {metric} ({where}) {final:.4f}, mean of {runs} run(s){process}"
    if bench == "predict":
        return (
            f"end to end {body['end_to_end_s_mean']:.2f} s mean (min {body['end_to_end_s_min']:.2f} s), "
            f"loop {body['loop_img_s_mean']:,.0f} img/s, {body['rows']:,} rows, tta={body['tta']}"
        )
    if bench == "data":
        return (
            f"{body['rows']:,} rows: cold {body['cold_s_mean']:.2f} s, cached {body['cached_s_mean']:.3f} s"
        )
    if bench == "budget":
        return "val/acc (held-out writers) after 1 epoch: " + ", ".join(
            f"{r['model']} {r['val_acc']:.4f}" for r in body["rows"]
        )
    if bench == "keras_cnn1":
        if "end_to_end" in body:
            keras, quick = body["end_to_end"]
            return (
                f"quick {quick['wall_seconds']:.1f} s, dev {pct(quick['dev_acc'])}; Keras CNN1 "
                f"{keras['wall_seconds']:.1f} s, dev {pct(keras['dev_acc'])} ({body['wall_ratio']:.2f}x)"
            )
        return "kmnist / Keras per epoch: " + ", ".join(
            f"{k.split(' (')[0].removeprefix('kmnist, ')} {v:.2f}x"
            for k, v in body["speedup_last_epoch"].items()
        )
    if bench == "pipeline":
        return "dev acc by stage (pseudo and distilled stages transductive): " + ", ".join(
            f"{s['stage']} {pct(s['dev_acc'])}" for s in body["stages"]
        )
    return ""


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: Path = RESULTS) -> str:
    names = benchmarks()
    entries: dict[str, list] = {}
    machines: dict[str, set[str]] = {}
    for path in sorted(results.iterdir()):
        match = NAME.match(path.name)
        if path.name == "README.md" or not match:
            continue
        meta, body = read(path)
        bench = group(match["what"], names) or "other"
        entries.setdefault(bench, []).append((match, meta, body, path.name))
        machines.setdefault(meta.get("machine", "?"), set()).add(meta.get("machine_detail", "not recorded"))
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python bench/results_index.py` from the files in this folder: do not edit by hand.",
        "Each file is `<what>_<machine>_<date>`; what was learnt from them is in",
        "[../FINDINGS.md](../FINDINGS.md). Accuracy: **dev** is the 4 official test writers of",
        "`test_dev.csv.gz` (used to choose recipes, so it reads optimistic); `val/acc` is held-out",
        "*training* writers. Private-writer and Dig-MNIST scores are in `../submissions/README.md`.",
        "",
        "Machines:",
        "",
    ]
    for slug in sorted(machines):
        lines.append(f"- `{slug}`: {'; '.join(sorted(machines[slug]))}")
    for bench in sorted(entries):
        lines += ["", f"## {bench}", "", names.get(bench, ""), ""]
        lines += ["| result | what | headline | command | machine | date |", "|---|---|---|---|---|---|"]
        rows = sorted(entries[bench], key=lambda e: (e[0]["date"], e[3]), reverse=True)
        for match, meta, body, name in rows:
            note = f"; {meta['note']}" if meta.get("note") else ""
            try:
                head = headline(bench, body)
            except (KeyError, TypeError, ValueError, IndexError):
                head = ""
            lines.append(
                f"| [{name}]({name}) | {cell(match['what'] + note)} | {cell(head)} "
                f"| `{cell(meta.get('command', 'not recorded'))}` | {meta.get('machine', '')} "
                f"| {meta.get('date', '')} |"
            )
    return "\n".join(lines) + "\n"


def write(text: str, path: Path = INDEX) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    args = parser.parse_args(argv)
    bad = problems()
    for line in bad:
        print(f"error: bench/results/{line}", file=sys.stderr)
    text = render()
    if args.check:
        stale = not INDEX.exists() or INDEX.read_text() != text
        if stale:
            print(
                "error: bench/results/README.md is out of date: python bench/results_index.py",
                file=sys.stderr,
            )
        return 1 if bad or stale else 0
    write(text)
    print(f"wrote {INDEX}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
