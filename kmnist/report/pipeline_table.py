"""The accuracy pipeline's table: one row per stage (what it trained, what it scored), written as
`pipeline.json` and `pipeline.md` after every stage, and printed at the end."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from kmnist.utils.atomic import atomic_write_text, write_json


@dataclass
class Stage:
    """One row of the table: a set of checkpoints and what they scored."""

    name: str
    checkpoints: list[str]
    dev_acc: float | None = None  # the stage's prediction (ensemble or single)
    member_dev_accs: list[float] = field(default_factory=list)  # each member alone
    train_seconds: float = 0.0
    submissions: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def row(self) -> dict:
        members = self.member_dev_accs
        return {
            "stage": self.name,
            "models": len(self.checkpoints),
            "dev_acc": self.dev_acc,
            "member_dev_mean": statistics.mean(members) if members else None,
            "member_dev_std": statistics.stdev(members) if len(members) > 1 else None,
            "member_dev_accs": self.member_dev_accs,
            "train_seconds": round(self.train_seconds, 1),
            "submissions": self.submissions,
            "notes": self.notes,
            "checkpoints": self.checkpoints,
        }


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def markdown_table(rows: list[dict]) -> str:
    """The stages' rows (`Stage.row`) as GitHub markdown, accuracies in percent."""
    lines = [
        "| stage | models | dev acc % | members alone: dev mean ± std % | train s | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        spread = percent(row["member_dev_mean"]) + (
            f" ± {100 * row['member_dev_std']:.2f}" if row["member_dev_std"] is not None else ""
        )
        cells = [
            row["stage"],
            row["models"],
            percent(row["dev_acc"]),
            spread,
            row["train_seconds"],
            row["notes"],
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write_pipeline_table(root: Path, stages: list[Stage], facts: dict) -> None:
    """`pipeline.json` (the rows, then `facts`: the settings a resume may change) and `pipeline.md`."""
    rows = [stage.row() for stage in stages]
    write_json(root / "pipeline.json", {"stages": rows, **facts})
    atomic_write_text(root / "pipeline.md", markdown_table(rows))
