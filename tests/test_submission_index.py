"""bench/submissions/index.csv: one row per committed submission, its values in their allowed sets, its
dev figure the README table's, and every submission an `id,label` file of the right length."""

import csv
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "bench" / "submissions"
RESULTS = ROOT / "bench" / "results"
COLUMNS = ["file", "set", "kind", "networks", "unlabelled", "dev_acc", "dev_std", "seeds", "train_s"]
COLUMNS += ["device", "command"]
ROWS = {"test": 10_000, "dig": 10_240}  # test.csv.gz and dig.csv.gz
ALLOWED = {
    "set": set(ROWS),
    "kind": {"single", "ensemble"},
    "unlabelled": {"none", "test", "dig", "test+dig"},
}
# the networks made them, so the two files of a pair share these
PAIR_KEYS = ("kind", "networks", "dev_acc", "dev_std", "seeds", "train_s", "device")
DIGITS = set("0123456789")


def machines() -> set[str]:
    """The machine slugs bench/results names its files with (cpu2, cpu2-avx2, cpu2-bf16, h100)."""
    spec = importlib.util.spec_from_file_location("results_index", ROOT / "bench" / "results_index.py")
    results_index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results_index)
    return {m["machine"] for path in RESULTS.iterdir() if (m := results_index.NAME.match(path.name))}


def is_number(text: str, low: float, high: float) -> bool:
    try:
        return low <= float(text) <= high
    except ValueError:
        return False


def row_problems(row: dict, known_machines: set[str]) -> list[str]:
    name, found = row["file"], []
    for key, allowed in ALLOWED.items():
        if row[key] not in allowed:
            found.append(f"{name}: {key} {row[key]!r} is not one of {', '.join(sorted(allowed))}")
    split = name.removesuffix(".csv").rsplit("_", 1)[-1]
    if split not in ROWS:
        found.append(f"{name}: the name ends neither _test.csv nor _dig.csv")
    elif row["set"] in ROWS and row["set"] != split:
        found.append(f"{name}: set {row['set']!r}, but the name ends _{split}.csv")
    networks = int(row["networks"]) if row["networks"].isdigit() else 0
    if networks < 1:
        found.append(f"{name}: networks {row['networks']!r} is not a whole number >= 1")
    elif row["kind"] in ALLOWED["kind"] and (row["kind"] == "single") != (networks == 1):
        found.append(f"{name}: kind {row['kind']} with networks {networks} (single is 1, ensemble > 1)")
    if not is_number(row["dev_acc"], 10, 100):
        found.append(f"{name}: dev_acc {row['dev_acc']!r} is not a percentage")
    if row["dev_std"] and not is_number(row["dev_std"], 0, 100):
        found.append(f"{name}: dev_std {row['dev_std']!r} is neither empty nor a percentage")
    if not re.fullmatch(r"\d+(;\d+)*", row["seeds"]):
        found.append(f"{name}: seeds {row['seeds']!r} is not like 0 or 0;1;2")
    if row["train_s"] and not is_number(row["train_s"], 1e-3, 1e7):
        found.append(f"{name}: train_s {row['train_s']!r} is neither empty nor seconds")
    if row["device"] not in known_machines:
        found.append(f"{name}: device {row['device']!r} names no machine of bench/results")
    if not row["command"].strip():
        found.append(f"{name}: no command")
    return found


def file_problems(path: Path, split: str) -> list[str]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["id", "label"]:
        return [f"{path.name}: header {rows[0] if rows else []} is not id,label"]
    body = rows[1:]
    if len(body) != ROWS[split]:
        return [f"{path.name}: {len(body):,} rows, a {split} submission has {ROWS[split]:,}"]
    if [row[0] for row in body] != [str(i) for i in range(len(body))]:
        return [f"{path.name}: ids are not 0 to {len(body) - 1} in order"]
    if any(len(row) != 2 or row[1] not in DIGITS for row in body):
        return [f"{path.name}: a label is not a digit 0-9"]
    return []


def problems(folder: Path = SUBMISSIONS, known_machines: set[str] | None = None) -> list[str]:
    """One line per fault of `folder`'s index.csv and submissions; [] when all is well."""
    known_machines = machines() if known_machines is None else known_machines
    index = folder / "index.csv"
    if not index.is_file():
        return [f"{index}: missing"]
    with index.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != COLUMNS:
            return [f"index.csv: columns {reader.fieldnames}, expected {','.join(COLUMNS)}"]
        rows = list(reader)
    found, by_name = [], {}
    for row in rows:
        if row["file"] in by_name:
            found.append(f"{row['file']}: listed twice in index.csv")
        by_name[row["file"]] = row
        if not (folder / row["file"]).is_file():
            found.append(f"{row['file']}: named in index.csv, but no such file in {folder.name}/")
            continue
        found += row_problems(row, known_machines)
        split = row["file"].removesuffix(".csv").rsplit("_", 1)[-1]
        if split in ROWS:
            found += file_problems(folder / row["file"], split)
    found += [
        f"{path.name}: not in index.csv"
        for path in sorted(folder.glob("*.csv"))
        if path.name != "index.csv" and path.name not in by_name
    ]
    for name, row in by_name.items():
        other = by_name.get(name.replace("_test.csv", "_dig.csv")) if name.endswith("_test.csv") else None
        for key in PAIR_KEYS if other else ():
            if row[key] != other[key]:
                found.append(f"{name}: {key} {row[key]!r}, but {other['file']} says {other[key]!r}")
    return found


def readme_dev() -> dict[str, str]:
    """README table: file stem -> its dev figure (the first percentage of the dev column)."""
    dev = {}
    for line in (SUBMISSIONS / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            cells = line.split("|")
            dev[cells[1].strip().strip("`")] = re.search(r"(\d+\.\d+)%", cells[3]).group(1)
    return dev


def test_every_committed_submission_is_indexed_and_well_formed():
    assert problems() == []


def test_the_index_carries_the_readme_tables_dev_figures():
    with (SUBMISSIONS / "index.csv").open(newline="") as handle:
        index = {row["file"]: row["dev_acc"] for row in csv.DictReader(handle)}
    expected = {f"{stem}_{split}.csv": dev for stem, dev in readme_dev().items() for split in ROWS}
    committed = {path.name for path in SUBMISSIONS.glob("*.csv")} - {"index.csv"}
    assert set(expected) == committed, (
        "the README table names a file pair that is not committed, or misses one"
    )
    assert index == expected


def test_the_machine_slugs_are_bench_results_ones():
    assert {"cpu2", "cpu2-avx2", "cpu2-bf16", "h100"} <= machines()


@pytest.fixture
def copy(tmp_path):
    """A copy of two pairs of submissions and their index rows."""
    keep = ("cpu_ensemble3_affine", "cpu_bf16_aspect_pseudo3_distilled_affine")
    with (SUBMISSIONS / "index.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["file"].rsplit("_", 1)[0] in keep]
    for row in rows:
        shutil.copy(SUBMISSIONS / row["file"], tmp_path / row["file"])
    write_index(tmp_path, rows)
    assert len(rows) == 4 and problems(tmp_path) == []
    return tmp_path, rows


def write_index(folder: Path, rows: list[dict], columns: list[str] = COLUMNS) -> None:
    with (folder / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_a_file_missing_from_the_index_or_an_index_row_without_its_file_is_named(copy):
    folder, rows = copy
    write_index(folder, rows[1:] + [{**rows[0], "file": "gone_test.csv"}])
    assert sorted(problems(folder)) == [
        f"{rows[0]['file']}: not in index.csv",
        f"gone_test.csv: named in index.csv, but no such file in {folder.name}/",
    ]


def test_a_missing_column_is_named(copy):
    folder, rows = copy
    fewer = [column for column in COLUMNS if column != "unlabelled"]
    write_index(folder, rows, fewer)
    assert problems(folder) == [f"index.csv: columns {fewer}, expected {','.join(COLUMNS)}"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("set", "private", "set 'private' is not one of dig, test"),
        ("set", "dig", "set 'dig', but the name ends _test.csv"),
        ("kind", "snapshot", "kind 'snapshot' is not one of ensemble, single"),
        ("unlabelled", "dev", "unlabelled 'dev' is not one of dig, none, test, test+dig"),
        ("networks", "3", "kind single with networks 3 (single is 1, ensemble > 1)"),
        ("networks", "", "networks '' is not a whole number >= 1"),
        ("dev_acc", "99.3%", "dev_acc '99.3%' is not a percentage"),
        ("dev_std", "high", "dev_std 'high' is neither empty nor a percentage"),
        ("seeds", "0,1,2", "seeds '0,1,2' is not like 0 or 0;1;2"),
        ("train_s", "26 min", "train_s '26 min' is neither empty nor seconds"),
        ("device", "laptop", "device 'laptop' names no machine of bench/results"),
        ("command", " ", "no command"),
    ],
)
def test_a_value_outside_its_allowed_set_is_named(copy, key, value, message):
    folder, rows = copy
    single_test = next(i for i, row in enumerate(rows) if row["kind"] == "single" and row["set"] == "test")
    rows[single_test][key] = value
    write_index(folder, rows)
    name = rows[single_test]["file"]
    found = [line for line in problems(folder) if " says " not in line]  # pair disagreements aside
    assert found == [f"{name}: {message}"]


def test_an_ensemble_of_one_network_is_refused(copy):
    folder, rows = copy
    for row in rows:
        if row["kind"] == "ensemble":
            row["networks"] = "1"
    write_index(folder, rows)
    assert problems(folder) == [
        f"{row['file']}: kind ensemble with networks 1 (single is 1, ensemble > 1)"
        for row in rows
        if row["kind"] == "ensemble"
    ]


def test_the_two_files_of_a_pair_must_agree_on_their_networks(copy):
    folder, rows = copy
    rows[0]["dev_acc"] = "98.00"
    write_index(folder, rows)
    other = rows[0]["file"].replace("_test.csv", "_dig.csv")
    assert problems(folder) == [
        f"{rows[0]['file']}: dev_acc '98.00', but {other} says '{rows[1]['dev_acc']}'"
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: ["ImageId,Label"] + lines[1:], "header ['ImageId', 'Label'] is not id,label"),
        (lambda lines: lines[:-1], "9,999 rows, a test submission has 10,000"),
        (lambda lines: lines[:1] + lines[2:] + lines[1:2], "ids are not 0 to 9999 in order"),
        (lambda lines: lines[:-1] + ["9999,10"], "a label is not a digit 0-9"),
    ],
)
def test_a_submission_without_the_id_label_header_or_its_row_count_is_named(copy, edit, message):
    folder, rows = copy
    path = folder / rows[0]["file"]
    assert rows[0]["set"] == "test"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    assert problems(folder) == [f"{path.name}: {message}"]
