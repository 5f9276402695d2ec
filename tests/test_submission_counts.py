"""bench/submission_counts.py: class counts, the error bound from known class sizes, disagreement."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "submission_counts.py"
spec = importlib.util.spec_from_file_location("submission_counts", SCRIPT)
submission_counts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(submission_counts)


def write(path: Path, labels: list[int]) -> str:
    pd.DataFrame({"id": range(len(labels)), "label": labels}).to_csv(path, index=False)
    return str(path)


def test_bound_counts_only_the_excess_over_each_class_size(tmp_path, capsys):
    # 2 per digit in truth; a calls one 3 a 7 (three 7s: one too many), b is balanced
    a = write(tmp_path / "a.csv", [0, 0, 1, 1, 2, 2, 3, 7, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9])
    b = write(tmp_path / "b.csv", [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9])
    submission_counts.main([a, b, "--per-class", "2"])
    lines = capsys.readouterr().out.splitlines()
    row_a = next(line for line in lines if line.startswith("| a |"))
    row_b = next(line for line in lines if line.startswith("| b |"))
    assert "2 2 2 1 2 2 2 3 2 2" in row_a and row_a.split("|")[5].strip() == "1"
    assert row_a.split("|")[6].strip() == "95.00%"
    assert row_b.split("|")[5].strip() == "0"
    assert "| a | b | 1 of 20 |" in lines


def test_a_file_without_a_label_column_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": [0, 1], "prediction": [3, 4]}).to_csv(bad, index=False)
    with pytest.raises(SystemExit, match=r"bad\.csv: expected columns id,label; missing label"):
        submission_counts.main([str(bad)])


def test_files_with_one_name_in_two_folders_are_both_shown(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = write(tmp_path / "old" / "dig.csv", [0, 1, 2, 3])
    new = write(tmp_path / "new" / "dig.csv", [0, 1, 2, 2])
    submission_counts.main([old, new])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("| old/dig | 4 |") for line in lines) and any(
        line.startswith("| new/dig | 4 |") for line in lines
    )
    assert "| old/dig | new/dig | 1 of 4 |" in lines
