"""bench/results/: one naming scheme (<what>_<machine>_<date>), every result carrying its command,
machine and date, and an index (bench/results/README.md) that is what bench/results_index.py writes now."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


results_index = load("results_index")
benchmeta = load("benchmeta")


def test_the_index_is_what_the_script_writes_now():
    assert (BENCH / "results" / "README.md").read_text() == results_index.render(), (
        "bench/results/README.md is out of date: run python bench/results_index.py"
    )


def test_every_result_follows_the_naming_scheme_and_carries_its_meta():
    assert results_index.problems() == []


def test_no_loose_results_at_the_top_of_bench():
    loose = [p.name for p in BENCH.iterdir() if p.is_file() and p.suffix not in {".py", ".sh", ".md"}] + [
        p.name for p in BENCH.glob("*.md") if p.name != "FINDINGS.md"
    ]
    assert loose == []


def write_json(path: Path, meta: dict | None) -> None:
    path.write_text(json.dumps({**({"meta": meta} if meta else {}), "rows": 1}))


def test_bad_names_and_missing_or_wrong_meta_are_each_named(tmp_path):
    good = {"command": "python bench/data.py", "machine": "cpu2-avx2", "date": "2026-12-07"}
    write_json(tmp_path / "data_cpu2-avx2_2026-12-07.json", good)
    write_json(tmp_path / "tta_views_cpu_session15_width48.json", good)  # the old scheme
    write_json(tmp_path / "tta_views_session15_cpu2-avx2_2026-12-07.json", good)  # a work period
    write_json(tmp_path / "throughput_cpu2-avx2_2026-12-31.json", good)  # date differs from meta
    write_json(tmp_path / "predict_h100_2026-12-07.json", None)  # no meta
    write_json(tmp_path / "nothing_h100_2026-12-07.json", {**good, "machine": "h100"})  # no such benchmark
    (tmp_path / "profile_x_cpu2_2026-13-01.txt").write_text("meta: {}\n10 ms per step\n")
    found = results_index.problems(tmp_path)
    assert sorted({line.split(":")[0] for line in found}) == [
        "nothing_h100_2026-12-07.json",
        "predict_h100_2026-12-07.json",
        "profile_x_cpu2_2026-13-01.txt",
        "throughput_cpu2-avx2_2026-12-31.json",
        "tta_views_cpu_session15_width48.json",
        "tta_views_session15_cpu2-avx2_2026-12-07.json",
    ]
    text = "\n".join(found)
    assert "tta_views_cpu_session15_width48.json: not <what>_<machine>_<date>" in text
    assert "nothing_h100_2026-12-07.json: 'nothing' starts with no benchmark's name" in text
    assert "predict_h100_2026-12-07.json: meta lacks command, machine, date" in text
    assert "profile_x_cpu2_2026-13-01.txt: 2026-13-01 is not a date" in text
    assert "tta_views_session15_cpu2-avx2_2026-12-07.json: names a work period" in text
    assert "meta date '2026-12-07' differs from the name's '2026-12-31'" in text


def test_the_index_lists_each_result_newest_first_with_its_command(tmp_path):
    for date in ("2026-12-01", "2026-12-05"):
        meta = {"command": f"python bench/data.py # {date}", "machine": "cpu2-bf16", "date": date}
        (tmp_path / f"data_cpu2-bf16_{date}.json").write_text(
            json.dumps({"meta": meta, "rows": 10, "cold_s_mean": 3.5, "cached_s_mean": 0.02})
        )
    text = results_index.render(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| [data_")]
    assert [r.split("]")[0] for r in rows] == [
        "| [data_cpu2-bf16_2026-12-05.json",
        "| [data_cpu2-bf16_2026-12-01.json",
    ]
    assert "`python bench/data.py # 2026-12-05`" in rows[0] and "cold 3.50 s" in rows[0]


@pytest.mark.parametrize(
    ("name", "count", "slug"),
    [
        ("NVIDIA H100 80GB HBM3", 1, "h100"),
        ("NVIDIA H200", 1, "h200"),
        ("NVIDIA A100-SXM4-80GB", 1, "a100"),
        ("NVIDIA GeForce RTX 4090", 1, "rtx-4090"),
        ("NVIDIA H100 80GB HBM3", 8, "8xh100"),
    ],
)
def test_gpu_slugs_fit_the_scheme(name, count, slug):
    assert benchmeta.gpu_slug(name, count) == slug
    assert results_index.NAME.match(f"throughput_{slug}_2026-12-07.json")


def test_cpu_slug_reads_native_bf16_from_the_flags():
    assert benchmeta.cpu_slug({"avx2", "avx512f", "avx512_bf16"}, 2) == "cpu2-bf16"
    assert benchmeta.cpu_slug({"avx2", "amx_bf16"}, 16) == "cpu16-bf16"
    assert benchmeta.cpu_slug({"avx2", "avx512f"}, 2) == "cpu2-avx512"
    assert benchmeta.cpu_slug({"avx2", "fma"}, 2) == "cpu2-avx2"
    assert benchmeta.cpu_slug(set(), 4) == "cpu4"


def test_default_output_is_named_by_the_scheme_and_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmeta, "RESULTS", tmp_path)
    first = Path(benchmeta.default_out("tta_views", "cpu"))
    assert first.parent == tmp_path and results_index.NAME.match(first.name)
    first.write_text("{}")
    second = Path(benchmeta.default_out("tta_views", "cpu"))
    assert second != first and results_index.NAME.match(second.name)
    assert second.name.startswith("tta_views_2_")


def test_a_bench_script_records_command_machine_and_date(tmp_path, data_dir):
    out = tmp_path / "data.json"
    done = subprocess.run(
        [sys.executable, "bench/data.py", "--file", str(data_dir / "train.csv.gz"), "--repeats", "1"]
        + ["--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads(out.read_text())["meta"]
    assert meta["command"].startswith("python bench/data.py --file ")
    assert meta["command"].endswith(f"--repeats 1 --out {out}")
    assert results_index.NAME.match(f"data_{meta['machine']}_{meta['date']}.json")


def test_findings_link_only_to_results_that_exist():
    text = (BENCH / "FINDINGS.md").read_text()
    links = re.findall(r"\]\(((?:results|submissions)/[^)]*)\)", text)
    assert links and [link for link in links if not (BENCH / link).exists()] == []
