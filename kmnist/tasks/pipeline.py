"""The accuracy pipeline in one command (conf/pipeline.yaml):
`python -m kmnist.tasks.pipeline [key=value ...]`.

1. members: train k models (train.py's config + `train` + each member's overrides);
2. ensemble: average their probabilities (with flip-free TTA) on the dev, test and Dig files;
3. pseudo-label rounds: label the confident test rows with the ensemble, train the members
   again with those rows added, ensemble again;
4. distilled: the final ensemble teaches one network (`loss.distill`) on the training images
   and every test image.

Each stage writes `test` and `dig` submissions and is scored on the dev file (labels used for
scoring only). Every training run is a normal kmnist run directory (config, metrics, checkpoints,
report) under the pipeline's folder; `pipeline.md` / `pipeline.json` hold the table.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from kmnist.data.io import DigitTable, read_digits
from kmnist.data.pseudo_labels import write_pseudo_labels
from kmnist.data.tta import tta_name
from kmnist.errors import ConfigError
from kmnist.report.pipeline_table import Stage, markdown_table, write_pipeline_table
from kmnist.tasks.pipeline_options import check_pipeline_options, with_lists
from kmnist.tasks.pipeline_runs import compose_run, train_run
from kmnist.tasks.resume import kept_labels, pipeline_folder, record_labellers, stored_probabilities
from kmnist.tasks.wrapper import task_wrapper
from kmnist.utils.overrides import quoted

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, cfg: DictConfig):
        self.cfg = with_lists(cfg)  # seeds=0 -> [0]; `cfg` itself stays as typed, to compare on resume=
        check_pipeline_options(
            self.cfg, lambda overrides: compose_run(overrides, Path(cfg.paths.output_dir) / "check")
        )
        # resume=DIR continues a pipeline in its folder; otherwise this run's own (Hydra's) folder.
        self.root = pipeline_folder(cfg.resume, cfg) if cfg.get("resume") else Path(cfg.paths.output_dir)
        self.files = {"dev": cfg.paths.dev_file, "test": cfg.test_file, "dig": cfg.get("dig_file")}
        self.tables: dict[str, DigitTable] = {}
        for split, path in self.files.items():
            if path:
                self.tables[split] = read_digits(path)
        if "test" not in self.tables:
            raise ConfigError(
                "test_file=null: the pipeline predicts and pseudo-labels test_file; set it to test.csv.gz"
            )
        if "dev" in self.tables and self.tables["dev"].labels is None:
            raise ConfigError(
                f"paths.dev_file={cfg.paths.dev_file}: has no `label` column to score the stages with"
            )
        self.stages: list[Stage] = []
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    # ------------------------------------------------------------ pieces

    def probabilities(self, checkpoints: list[str], split: str) -> np.ndarray:
        """Mean probabilities of the checkpoints on a file (TTA views included). Each model's are
        predicted once per file and kept in `probabilities/`: neither its ensemble nor a resumed
        pipeline predicts them again."""
        store = self.root / "probabilities"
        for path in checkpoints:
            if (path, split) not in self.cache:
                self.cache[path, split] = stored_probabilities(
                    store,
                    path,
                    self.files[split],
                    self.cfg.tta,
                    self.cfg.precision,
                    partial(self.predict, path, split),
                )
        return np.mean([self.cache[path, split] for path in checkpoints], axis=0)

    def predict(self, checkpoint: str, split: str) -> np.ndarray:
        """One model's probabilities on a file, TTA views included (what `probabilities` stores)."""
        from kmnist.engine.inference import load_checkpoint, predict_proba, resolve_device

        return predict_proba(
            [load_checkpoint(checkpoint)],
            self.tables[split].images,
            batch_size=self.cfg.batch_size,
            device=resolve_device(self.cfg.accelerator),
            tta=self.cfg.tta,
            progress=False,
            precision=self.cfg.precision,
        )

    def dev_accuracy(self, checkpoints: list[str]) -> float | None:
        if "dev" not in self.tables:
            return None
        probs = self.probabilities(checkpoints, "dev")
        return float((probs.argmax(1) == self.tables["dev"].labels).mean())

    def submit(self, stage: Stage) -> np.ndarray:
        """Write the stage's test (and Dig) submissions; return its test probabilities."""
        from kmnist.engine.inference import write_submission

        test_probs = None
        for split in ("test", "dig"):
            if split not in self.tables:
                continue
            probs = self.probabilities(stage.checkpoints, split)
            table = self.tables[split]
            ids = table.ids if table.ids is not None else np.arange(len(table))
            path = write_submission(
                ids, probs.argmax(1), self.root / "submissions" / f"{stage.name}_{split}.csv"
            )
            stage.submissions[split] = str(path)
            if split == "test":
                test_probs = probs
        return test_probs

    def finish(self, stage: Stage) -> np.ndarray:
        stage.dev_acc = self.dev_accuracy(stage.checkpoints)
        test_probs = self.submit(stage)
        self.stages.append(stage)
        self.write_table()
        log.info(
            "stage %s: dev accuracy %s",
            stage.name,
            f"{stage.dev_acc:.4f}" if stage.dev_acc is not None else "n/a",
        )
        return test_probs

    def member_overrides(self) -> list[list[str]]:
        """Each member's own overrides: `members` (strings of overrides) when set, else one per seed."""
        if self.cfg.members:
            return [str(member).split() for member in self.cfg.members]
        return [[f"seed={seed}"] for seed in self.cfg.seeds]

    def train_members(self, name: str, extra: list[str]) -> Stage:
        stage = Stage(name, checkpoints=[])
        for i, member in enumerate(self.member_overrides()):
            checkpoint, seconds = train_run(self.cfg, [*member, *extra], self.root / name / str(i))
            stage.checkpoints.append(checkpoint)
            stage.train_seconds += seconds
            if "dev" in self.tables:
                stage.member_dev_accs.append(self.dev_accuracy([checkpoint]))
        return stage

    def pseudo_labels(
        self, test_probs: np.ndarray, threshold: float, path: Path, labelled_by: list[str]
    ) -> tuple[Path | None, int]:
        """The confident test rows as a training file; a resumed pipeline keeps the one its runs
        trained on."""
        if kept_labels(path, labelled_by):
            return path.resolve(), len(read_digits(path))
        written = write_pseudo_labels(self.tables["test"], test_probs, threshold, path)
        record_labellers(path, labelled_by)
        return (Path(written["pseudo_labels"]) if written["pseudo_labels"] else None), written[
            "pseudo_label_rows"
        ]

    # ------------------------------------------------------------ the stages

    def run(self) -> list[Stage]:
        cfg = self.cfg
        if not self.member_overrides() and (
            not cfg.checkpoints or cfg.pseudo_label.rounds > 0
        ):  # members would train
            raise ConfigError("seeds=[]: the pipeline needs at least one member, e.g. seeds=[0,1,2]")
        if cfg.checkpoints:  # trained already: score them, train nothing
            members = Stage("members", [str(p) for p in cfg.checkpoints])
            members.member_dev_accs = (
                [self.dev_accuracy([p]) for p in members.checkpoints] if "dev" in self.tables else []
            )
        else:
            members = self.train_members("members", [])
        test_probs = self.finish(
            Stage(
                "ensemble",
                members.checkpoints,
                member_dev_accs=members.member_dev_accs,
                train_seconds=members.train_seconds,
                notes=f"{len(members.checkpoints)} members",
            )
        )
        teachers = members.checkpoints
        for round_ in range(1, int(cfg.pseudo_label.rounds) + 1):
            name = f"pseudo{round_}"
            labels, rows = self.pseudo_labels(
                test_probs,
                float(cfg.pseudo_label.threshold),
                self.root / name / "pseudo_labels.csv.gz",
                teachers,
            )
            if labels is None:
                log.warning(
                    "%s: no test row reaches confidence %s; stopping the pseudo-label rounds",
                    name,
                    cfg.pseudo_label.threshold,
                )
                break
            stage = self.train_members(name, [f"data.extra_train=[{quoted(labels)}]"])
            stage.notes = f"{rows} pseudo-labelled test rows (confidence >= {cfg.pseudo_label.threshold})"
            test_probs = self.finish(stage)
            teachers = stage.checkpoints
        if cfg.distill.enabled:
            # Every test row, labelled by the final ensemble: the student is taught there too.
            labels, rows = self.pseudo_labels(
                test_probs, 0.0, self.root / "distilled" / "test_labelled_by_ensemble.csv.gz", teachers
            )
            teacher_list = ",".join(quoted(t) for t in teachers)
            checkpoint, seconds = train_run(
                self.cfg,
                [
                    f"seed={cfg.distill.seed}",
                    *cfg.distill.overrides,
                    f"loss.distill.teachers=[{teacher_list}]",
                    f"loss.distill.weight={cfg.distill.weight}",
                    f"data.extra_train=[{quoted(labels)}]",
                ],
                self.root / "distilled" / "run",
            )
            stage = Stage(
                "distilled",
                [checkpoint],
                train_seconds=seconds,
                notes=f"taught by {len(teachers)} models on the training images and {rows} test images",
            )
            stage.member_dev_accs = [self.dev_accuracy([checkpoint])] if "dev" in self.tables else []
            self.finish(stage)
        return self.stages

    # ------------------------------------------------------------ the table

    def write_table(self) -> None:
        facts = {
            "dev_file": self.cfg.paths.dev_file,
            "tta": tta_name(self.cfg.tta),
            "precision": str(self.cfg.precision),
        }
        write_pipeline_table(self.root, self.stages, facts)  # a resume may change the last two


def run_pipeline(cfg: DictConfig) -> Pipeline:
    pipeline = Pipeline(cfg)
    pipeline.run()
    return pipeline


@hydra.main(version_base="1.3", config_path="../../conf", config_name="pipeline")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()
    pipeline = task_wrapper(run_pipeline)(cfg)
    print(markdown_table([stage.row() for stage in pipeline.stages]), end="")
    print(f"pipeline: {time.perf_counter() - start:.0f} s; submissions and the table in {pipeline.root}")


if __name__ == "__main__":
    from kmnist.utils.hints import run_with_hints

    run_with_hints(main, "pipeline")
