"""`python -m kmnist.tasks.pipeline`: members -> ensemble -> pseudo-label round -> distilled network,
run for real on a tiny CPU setting."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from omegaconf import OmegaConf, open_dict

from kmnist.data.io import read_digits
from kmnist.engine.inference import load_checkpoint, predict_proba
from kmnist.tasks.resume import probabilities_file
from kmnist.utils.hashing import file_sha256

TINY = [
    "model=cnn",
    "data.val_writers=1",
    "data.batch_size=32",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=8",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "report=false",
    "loss.label_smoothing=0",
]


def run_pipeline(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kmnist.tasks.pipeline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def hydra_list(items: list[str]) -> str:
    return "[" + ",".join(f"'{item}'" for item in items) + "]"


@pytest.mark.slow
def test_the_whole_pipeline_on_a_tiny_cpu_setting(data_dir, tmp_path):
    root = tmp_path / "pipe"
    done = run_pipeline(
        f"train={hydra_list(TINY)}",
        "seeds=[0,1]",
        "pseudo_label.rounds=1",
        "pseudo_label.threshold=0.1",
        "distill.seed=5",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={root}",
        f"paths.log_dir={tmp_path}",
        "accelerator=cpu",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "| ensemble | 2 |" in done.stdout and "| distilled | 1 |" in done.stdout

    summary = json.loads((root / "pipeline.json").read_text())
    stages = {row["stage"]: row for row in summary["stages"]}
    assert list(stages) == ["ensemble", "pseudo1", "distilled"]
    assert summary["tta"] == "affine" and summary["precision"] == "32-true"  # how the stages were predicted
    dev = read_digits(data_dir / "test_dev.csv.gz")
    # The ensemble's dev accuracy: its members' probabilities averaged over the default views, recomputed.
    assert summary["tta"] == "affine"
    members = [load_checkpoint(p) for p in stages["ensemble"]["checkpoints"]]
    probs = predict_proba(members, dev.images, tta="affine", progress=False)
    assert stages["ensemble"]["dev_acc"] == pytest.approx(float((probs.argmax(1) == dev.labels).mean()))
    assert len(stages["ensemble"]["checkpoints"]) == 2 and stages["ensemble"]["member_dev_std"] is not None

    # Submissions: every stage, test and Dig-MNIST, ids in the input's order.
    for stage in stages.values():
        for split, name in (("test", "test.csv.gz"), ("dig", "dig.csv.gz")):
            submission = pd.read_csv(stage["submissions"][split])
            assert list(submission.columns) == ["id", "label"]
            assert np.array_equal(submission["id"], read_digits(data_dir / name).ids)
            assert submission["label"].between(0, 9).all()

    # The pseudo round trained on the confident test rows; the student was taught by its models.
    pseudo_cfg = torch.load(stages["pseudo1"]["checkpoints"][0], weights_only=True)["hyper_parameters"][
        "config"
    ]
    assert pseudo_cfg["data"]["extra_train"] == [str(root / "pseudo1" / "pseudo_labels.csv.gz")]
    assert pseudo_cfg["data"]["val_file"] == str(data_dir / "test_dev.csv.gz")
    student_cfg = torch.load(stages["distilled"]["checkpoints"][0], weights_only=True)["hyper_parameters"][
        "config"
    ]
    assert student_cfg["loss"]["distill"]["teachers"] == stages["pseudo1"]["checkpoints"]
    assert student_cfg["seed"] == 5
    taught = read_digits(student_cfg["data"]["extra_train"][0])
    assert len(taught) == len(read_digits(data_dir / "test.csv.gz"))  # every test row
    # Each run is a kmnist run directory with its config saved.
    assert (root / "members" / "0" / ".hydra" / "config.yaml").is_file()
    assert (root / "pipeline.md").read_text().startswith("| stage |")


def test_a_pipeline_without_members_is_refused_in_one_line(data_dir, tmp_path):
    done = run_pipeline("seeds=[]", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    assert (
        done.stderr.strip().splitlines()[-1].startswith("error: seeds=[]") and "Traceback" not in done.stderr
    )


def test_a_missing_checkpoint_is_refused_in_one_line(data_dir, tmp_path):
    done = run_pipeline(
        f"checkpoints=[{tmp_path / 'typo.ckpt'}]",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'typo.ckpt'}: checkpoint not found "
        "(checkpoints=[...] takes .ckpt files written by train.py)"
    )


def test_a_bad_precision_is_refused_before_any_member_trains(data_dir, tmp_path):
    done = run_pipeline(
        "precision=fp16",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={tmp_path}",
        "train=" + hydra_list(TINY),
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert (
        "precision='fp16': expected one of" in done.stderr.strip().splitlines()[-1]
        and "Traceback" not in done.stderr
    )
    assert not list(tmp_path.rglob("*.ckpt"))  # nothing trained first


def test_members_may_be_diverse_networks(data_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from kmnist.tasks.pipeline import Pipeline

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(
            config_name="pipeline",
            overrides=[
                f"paths.data_dir={data_dir}",
                "members=['seed=0','model=dnn seed=1']",
                f"paths.output_dir={tmp_path}",
            ],
        )
        assert Pipeline(cfg).member_overrides() == [["seed=0"], ["model=dnn", "seed=1"]]


def test_trained_checkpoints_are_reused_not_retrained(compose_train, data_dir, tmp_path):
    from kmnist.tasks.train import train

    ckpts = []
    for seed in (0, 1):
        cfg = compose_train("model=cnn", "report=false", f"seed={seed}")
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"run{seed}")
        ckpts.append(train(cfg)[0]["best_ckpt"])
    root = tmp_path / "pipe"
    # seeds=[]: nothing trains, so no member seed is needed (it was refused as "needs at least one member")
    done = run_pipeline(
        f"checkpoints=[{','.join(ckpts)}]",
        "pseudo_label.rounds=0",
        "distill.enabled=false",
        "dig_file=null",
        "tta=true",
        "seeds=[]",
        f"paths.data_dir={data_dir}",
        f"hydra.run.dir={root}",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (stage,) = json.loads((root / "pipeline.json").read_text())["stages"]
    assert stage["checkpoints"] == ckpts and not (root / "members").exists()
    dev = read_digits(data_dir / "test_dev.csv.gz")
    probs = predict_proba([load_checkpoint(p) for p in ckpts], dev.images, tta=True, progress=False)
    assert stage["dev_acc"] == pytest.approx(float((probs.argmax(1) == dev.labels).mean()))
    assert set(stage["submissions"]) == {"test"}


@pytest.mark.slow
def test_a_cut_off_pipeline_resumes_in_its_folder(data_dir, tmp_path):
    """resume=DIR reuses the finished runs, continues a cut-off one from its last.ckpt, keeps the
    pseudo-labels its round trained on, sets aside a stage whose teachers changed, and refuses a
    folder made with other options."""
    root = tmp_path / "pipe"
    # Two epochs, every epoch's checkpoint kept: a run can be cut off after its first.
    train = [o for o in TINY if not o.startswith("trainer.max_epochs")] + [
        "trainer.max_epochs=2",
        "callbacks.model_checkpoint.save_top_k=-1",
    ]
    options = [
        f"train={hydra_list(train)}",
        "seeds=[0]",
        "pseudo_label.rounds=1",
        "pseudo_label.threshold=0.1",
        "dig_file=null",
        "tta=false",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={tmp_path}",
        "accelerator=cpu",
    ]
    first = run_pipeline(*options, f"hydra.run.dir={root}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-4000:]
    before = {row["stage"]: row for row in json.loads((root / "pipeline.json").read_text())["stages"]}
    member_files = {
        p: p.stat().st_mtime_ns
        for p in [
            *(root / "members" / "0").glob("checkpoints/*.ckpt"),
            root / "members" / "0" / "metrics.json",
        ]
    }
    # Each model's probabilities on dev and test (no Dig file here), kept: member, pseudo round, student.
    assert len(list((root / "probabilities").glob("*.npy"))) == 3 * 2
    (member_ckpt,) = before["ensemble"]["checkpoints"]
    member_dev = probabilities_file(
        root / "probabilities", member_ckpt, f"{data_dir}/test_dev.csv.gz", False, "32-true"
    )
    member_dev_written = member_dev.stat().st_mtime_ns
    # Cut off: the pseudo round's run after its first epoch.
    cut = root / "pseudo1" / "0"
    (epoch0,) = cut.glob("checkpoints/epoch_000*.ckpt")
    epoch0_written = epoch0.stat().st_mtime_ns
    shutil.copy(epoch0, cut / "checkpoints" / "last.ckpt")
    for path in [*cut.glob("checkpoints/epoch_001*.ckpt"), cut / "metrics.json", root / "pipeline.json"]:
        path.unlink()
    # Kept, not predicted again: a row fewer here stays a row fewer (predictions made again, e.g. on
    # another machine or precision, may differ in a few rows from what the round trained on).
    labels = root / "pseudo1" / "pseudo_labels.csv.gz"
    pd.read_csv(labels).iloc[:-1].to_csv(labels, index=False)
    labels_bytes = labels.read_bytes()
    # ...unless other models labelled it: the student's file, as if the first run had had fewer rounds;
    # then the student taught on it is stale too.
    student_labels = root / "distilled" / "test_labelled_by_ensemble.csv.gz"
    (old_student,) = before["distilled"]["checkpoints"]
    old_student_bytes = Path(old_student).read_bytes()
    pd.read_csv(student_labels).iloc[:-1].to_csv(student_labels, index=False)
    # Same paths, other contents: a labeller trained anew in place (its folder deleted, as a refusal says).
    (root / "distilled" / "test_labelled_by_ensemble.labelled_by.json").write_text(
        json.dumps(
            {
                "labelled_by": before["pseudo1"]["checkpoints"],
                "sha256": ["0" * 64] * len(before["pseudo1"]["checkpoints"]),
            }
        )
    )

    def resume(*extra: str, folder: Path = root, name: str) -> subprocess.CompletedProcess:
        return run_pipeline(
            *options, *extra, f"resume={folder}", f"hydra.run.dir={tmp_path / name}", cwd=tmp_path
        )

    refused = resume("distill.seed=7", name="other_options")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: resume: {root} was made with other options (distill.seed: 100 -> 7); "
        "repeat the first command's options, or leave out resume= to start a new pipeline"
    )
    # A run folder whose recipe changed since (conf/ edited between sessions) is refused too, by name.
    saved = root / "members" / "0" / ".hydra" / "config.yaml"
    original = saved.read_text()
    saved.write_text(original.replace("lr: 0.003", "lr: 0.01", 1))
    changed = resume(name="changed_recipe")
    assert changed.returncode != 0
    assert (
        f"resume: {root / 'members' / '0'} was trained with another config (optim.lr: 0.01 -> 0.003)"
        in changed.stderr
    )
    saved.write_text(original)
    assert (
        Path(old_student).read_bytes() == old_student_bytes and epoch0.stat().st_mtime_ns == epoch0_written
    )  # nothing trained
    assert not list(root.glob("*.superseded-*"))  # nor set aside

    resumed = resume("batch_size=512", name="resumed")  # how it predicts may change
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    after = {row["stage"]: row for row in json.loads((root / "pipeline.json").read_text())["stages"]}
    assert list(after) == ["ensemble", "pseudo1", "distilled"]
    # The member was reused as it was, not run again: same files, same dev accuracy.
    assert after["ensemble"]["checkpoints"] == before["ensemble"]["checkpoints"]
    assert after["ensemble"]["dev_acc"] == before["ensemble"]["dev_acc"]
    assert {p: p.stat().st_mtime_ns for p in member_files} == member_files
    # ...and scored from its stored probabilities: read, not predicted and written again.
    assert member_dev.stat().st_mtime_ns == member_dev_written
    # The cut-off run trained its second epoch only, from its last.ckpt, on the pseudo-labels it started with.
    assert json.loads((cut / "metrics.json").read_text())["epochs"] == 2
    # (trained anew, it would have written a second epoch-0 file beside the first, epoch_000-...-v1.ckpt)
    assert (
        epoch0.stat().st_mtime_ns == epoch0_written and len(list(cut.glob("checkpoints/epoch_*.ckpt"))) == 2
    )
    assert OmegaConf.load(cut / ".hydra" / "config.yaml").ckpt_path == str(cut / "checkpoints" / "last.ckpt")
    assert labels.read_bytes() == labels_bytes
    # The stale student was set aside with its labels and submission, as they were...
    aside = root / "distilled.superseded-1"
    assert (
        aside / "run" / Path(old_student).relative_to(root / "distilled" / "run")
    ).read_bytes() == old_student_bytes
    assert len(read_digits(aside / student_labels.name)) == len(read_digits(data_dir / "test.csv.gz")) - 1
    assert (aside / "distilled_test.csv").is_file() and not list(root.glob("distilled.superseded-2"))
    # ...and the student's file labelled anew by the pseudo round's network, and a new student taught by it.
    assert len(read_digits(student_labels)) == len(read_digits(data_dir / "test.csv.gz"))
    assert json.loads((root / "distilled" / "test_labelled_by_ensemble.labelled_by.json").read_text()) == {
        "labelled_by": after["pseudo1"]["checkpoints"],
        "sha256": [file_sha256(p) for p in after["pseudo1"]["checkpoints"]],
    }
    student_cfg = torch.load(after["distilled"]["checkpoints"][0], weights_only=True)["hyper_parameters"][
        "config"
    ]
    assert student_cfg["loss"]["distill"]["teachers"] == after["pseudo1"]["checkpoints"]
    assert after["distilled"]["checkpoints"][0].startswith(str(root / "distilled" / "run"))
    assert Path(after["distilled"]["submissions"]["test"]).is_file()
    # The resumption's own folder holds its log, not the runs: pointing resume= at it is refused.
    again = resume(folder=tmp_path / "resumed", name="again")
    assert again.returncode != 0
    assert (
        again.stderr.strip().splitlines()[-1]
        == f"error: resume={tmp_path / 'resumed'}: that command resumed {root}; use resume={root}"
    )


def test_resume_refuses_a_folder_that_is_not_a_pipelines(data_dir, tmp_path):
    done = run_pipeline(
        f"resume={tmp_path}", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path}", cwd=tmp_path
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: resume={tmp_path}: not a pipeline folder (no pipeline's .hydra/config.yaml in {tmp_path})"
    )


@pytest.mark.slow
def test_a_sigterm_tells_how_to_resume_the_pipeline(data_dir, tmp_path):
    """A scheduler's SIGTERM mid-member: exit 143 and a hint that works (resume=, not a run's ckpt_path=)."""
    root = tmp_path / "pipe"
    train = [o for o in TINY if not o.startswith("trainer.max_epochs")] + ["trainer.max_epochs=20"]
    options = [
        f"train={hydra_list(train)}",
        "seeds=[0]",
        "pseudo_label.rounds=0",
        "distill.enabled=false",
        "dig_file=null",
        "tta=false",
        f"paths.data_dir={data_dir}",
        f"paths.log_dir={tmp_path}",
        "accelerator=cpu",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmnist.tasks.pipeline", *options, f"hydra.run.dir={root}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while (
        not list(root.glob("members/0/checkpoints/*.ckpt")) and time.time() < deadline and proc.poll() is None
    ):
        time.sleep(0.05)  # the member has finished an epoch
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-2000:]
    hint = stderr.strip().splitlines()[-1]
    assert (
        hint == f"SIGTERM: checkpoint saved; run the same command again with resume={root}"
        and "Traceback" not in stderr
    )
    assert not (root / "members" / "0" / "metrics.json").exists()

    resumed = run_pipeline(
        *options, hint.rsplit(" ", 1)[-1], f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((root / "members" / "0" / "metrics.json").read_text())["epochs"] == 20


@pytest.mark.parametrize(
    "override, message",
    [
        ("members=['seed=0','model=cnnn seed=1']", "members[1]='model=cnnn seed=1': "),
        ("distill.overrides=['trainer.max_epoch=3']", "distill.overrides=['trainer.max_epoch=3']: "),
        ("pseudo_label.threshold=2", "pseudo_label.threshold=2: expected a confidence in [0, 1]"),
        ("pseudo_label.rounds=-1", "pseudo_label.rounds=-1: expected a whole number >= 0"),
        ("seeds=abc", "seeds=abc: expected a whole number >= 0"),
        ("batch_size=0", "batch_size=0: expected a whole number >= 1"),
        (
            "checkpoints=[a.ckpt]|members=['model=cnnn']",
            "members[0]='model=cnnn': ",
        ),  # given members still train in the rounds
        (
            "accelerator=tpu",
            "accelerator=tpu: expected auto, cpu, gpu (or gpu:N) or mps",
        ),  # was a torch traceback after the members trained
        # Values train.py refuses: they composed, so the first members trained (hours) before the last failed.
        (
            "members=['seed=0','model=dnn seed=x']",
            "members[1]='model=dnn seed=x': seed='x': expected an integer",
        ),
        (
            "distill.overrides=['optim.lr=-1']",
            "distill.overrides=['optim.lr=-1']: optim.lr=-1: expected a value in (0, inf]",
        ),
    ],
)
def test_every_option_is_checked_before_any_member_trains(data_dir, tmp_path, override, message):
    from hydra import compose, initialize_config_dir

    from kmnist.errors import ConfigError
    from kmnist.tasks.pipeline import Pipeline

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(
            config_name="pipeline",
            overrides=[f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}", *override.split("|")],
        )
        with pytest.raises(ConfigError) as raised:
            Pipeline(cfg)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_single_value_where_a_list_is_expected_is_a_list_of_one(data_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from kmnist.tasks.pipeline import Pipeline

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(
            config_name="pipeline",
            overrides=[
                f"paths.data_dir={data_dir}",
                f"paths.output_dir={tmp_path}",
                "seeds=4",
                f"checkpoints={tmp_path / 'a.ckpt'}",
            ],
        )
        first = tmp_path / "first"  # as Hydra saves the options before the task runs: as typed
        (first / ".hydra").mkdir(parents=True)
        (first / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        pipeline = Pipeline(cfg)
        assert pipeline.member_overrides() == [["seed=4"]] and list(pipeline.cfg.checkpoints) == [
            str(tmp_path / "a.ckpt")
        ]
        # The options stay as typed in `cfg`, so the same command resumes that pipeline's folder.
        again = compose(
            config_name="pipeline",
            overrides=[
                f"paths.data_dir={data_dir}",
                f"paths.output_dir={tmp_path}",
                "seeds=4",
                f"checkpoints={tmp_path / 'a.ckpt'}",
                f"resume={first}",
            ],
        )
        assert Pipeline(again).root == first


def test_stored_probabilities_are_keyed_by_the_data_files_content(tmp_path):
    """A resumed pipeline must not score a rewritten dev/test file with the old file's probabilities,
    even when the new file keeps its path, size and time."""
    checkpoint = tmp_path / "m.ckpt"
    checkpoint.write_bytes(b"weights")
    data = tmp_path / "test_dev.csv"
    data.write_text("label,pixel0\n1,0\n")
    stat = data.stat()
    before = probabilities_file(tmp_path, str(checkpoint), str(data), "affine", "32-true")
    data.write_text("label,pixel0\n2,0\n")  # same size
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and same time
    assert probabilities_file(tmp_path, str(checkpoint), str(data), "affine", "32-true") != before
    data.write_text("label,pixel0\n1,0\n")
    assert probabilities_file(tmp_path, str(checkpoint), str(data), "affine", "32-true") == before
