"""Experiment trackers for real: a fit logs to a temporary MLflow store (read back with MlflowClient)
and to an offline W&B run; a missing tracker package fails in one line naming its extra."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from kmnist.errors import ConfigError
from kmnist.tasks.train import train


@pytest.mark.parametrize("choice", ["mlflow", "[default,mlflow]", "[mlflow,wandb]"])
def test_trackers_combine_with_the_default_loggers(choice):
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name="config", overrides=[f"logger={choice}"])
    assert {"csv", "tensorboard", "mlflow"} <= set(cfg.logger)
    assert ("wandb" in cfg.logger) == ("wandb" in choice)


def test_a_fit_logs_params_metrics_and_artifacts_to_mlflow(compose_train, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_train("logger=mlflow", "model=dnn")
    with open_dict(cfg):
        cfg.trainer.max_epochs = 2
    metrics, run = train(cfg)

    store = tmp_path / "mlflow" / "mlflow.db"  # under paths.log_dir: the default local store
    assert store.is_file()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("kmnist")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    # Params: the resolved config, flattened.
    assert logged.data.params["config/model/name"] == "dnn"
    assert float(logged.data.params["config/optim/lr"]) == pytest.approx(cfg.optim.lr)
    assert logged.data.tags["output_dir"] == str(run.output_dir)
    # val/acc once per epoch (then once more for the best checkpoint's validation).
    history = client.get_metric_history(logged.info.run_id, "val/acc")
    assert len(history) >= 2 and all(0.0 <= m.value <= 1.0 for m in history)
    assert history[-1].value == pytest.approx(metrics["val/acc"])
    # Artifacts: the report, metrics.json and the best checkpoint, as files in the store.
    names = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"metrics.json", "report", "checkpoints"} <= names
    report = {a.path for a in client.list_artifacts(logged.info.run_id, "report")}
    assert "report/curves.png" in report and "report/confusion.png" in report
    (ckpt,) = client.list_artifacts(logged.info.run_id, "checkpoints")
    assert ckpt.path.endswith(".ckpt") and ckpt.file_size > 1000
    # MLflow's own UI, as README starts it, lists the run.
    with mlflow_ui(f"sqlite:///{store}") as url:
        found = post_json(
            f"{url}/ajax-api/2.0/mlflow/runs/search", {"experiment_ids": [experiment.experiment_id]}
        )
    assert [r["info"]["run_id"] for r in found["runs"]] == [logged.info.run_id]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def mlflow_ui(store: str):
    """`mlflow ui` on 127.0.0.1, in its own process group (it starts workers and a job runner), stopped
    by its pid."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    "mlflow ui did not start: "
                    f"{server.stderr.read()[-2000:] if server.poll() is not None else 'timeout'}"
                )
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_fit_writes_an_offline_wandb_run(compose_train, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the default: offline, nothing leaves the machine
    monkeypatch.setenv("WANDB_SILENT", "true")
    metrics, run = train(compose_train("logger=wandb", "model=dnn", "report=false"))
    (offline,) = (run.output_dir / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb"))  # the run's log, for `wandb sync`
    assert (offline / "files" / "metrics.json").is_file()


def test_wandb_keeps_the_report_folders(compose_train, monkeypatch):
    """The held-out split's plots and the dev set's (dev/) share names: W&B keeps both, each in its
    folder (every file was saved flat, and dev/confusion.png overwrote confusion.png)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    metrics, run = train(compose_train("logger=wandb", "model=dnn", "data.val_file=${paths.dev_file}"))
    (offline,) = (run.output_dir / "wandb").glob("offline-run-*")
    files = offline / "files"
    for name in ("confusion.png", "dev/confusion.png"):
        assert (run.output_dir / name).is_file()  # the report wrote both
        assert (files / name).read_bytes() == (run.output_dir / name).read_bytes(), name
    assert (files / "confusion.png").read_bytes() != (files / "dev" / "confusion.png").read_bytes()
    assert (files / "metrics.json").is_file()
    (ckpt,) = (files / "checkpoints").glob("*.ckpt")
    assert ckpt.name == os.path.basename(metrics["best_ckpt"])


# One job of a parallel sweep, up to the point where it first writes to its MLflow store.
SWEEP_JOB = """
import sys, time
from pathlib import Path
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from kmnist.tasks.tracking import require_trackers

conf, log_dir, job, go = sys.argv[1:]
with initialize_config_dir(version_base="1.3", config_dir=conf):
    overrides = ["logger=mlflow", f"paths.log_dir={log_dir}", f"paths.output_dir={log_dir}/{job}"]
    cfg = compose(config_name="config", overrides=overrides)
import mlflow, lightning.pytorch.loggers  # noqa: E401,F401  loaded first: the jobs reach the store together
Path(log_dir, f"ready{job}").touch()
while not Path(go).exists():
    time.sleep(0.002)
require_trackers(cfg.logger)  # what train() does first
logger = instantiate(cfg.logger.mlflow)
logger.log_metrics({"val/acc": 0.5}, step=0)
logger.finalize("success")
"""


def test_parallel_jobs_create_a_new_mlflow_store_once(tmp_path, monkeypatch):
    """The first parallel sweep into a new store: every job started at once creates it, and each
    logs its run (two processes ran the schema migrations together and one crashed)."""
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    go = tmp_path / "go"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", SWEEP_JOB, str(CONF), str(tmp_path), str(job), str(go)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in range(4)
    ]
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("ready*"))) < len(jobs) and all(job.poll() is None for job in jobs):
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.05)
    go.touch()  # all at once, as a joblib sweep starts its jobs
    errors = [job.communicate(timeout=300)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * len(jobs), "\n".join(e[-2000:] for e in errors if e)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("kmnist")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["output_dir"] for r in runs) == [
        f"{tmp_path}/{job}" for job in range(len(jobs))
    ]
    assert all(r.info.status == "FINISHED" and r.data.metrics["val/acc"] == 0.5 for r in runs)
    assert experiment.artifact_location.endswith(f"{tmp_path}/mlflow/artifacts")


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_missing_tracker_names_its_extra(compose_train, monkeypatch, tracker):
    monkeypatch.setitem(sys.modules, tracker, None)  # what Python does when the package is absent
    with pytest.raises(
        ConfigError,
        match=rf'^logger.{tracker}: {tracker} is not installed; .*pip install -e "\.\[{tracker}\]"$',
    ):
        train(compose_train(f"logger={tracker}"))
