"""The Hydra callback that writes a sweep's leaderboard when a multirun ends (conf/hydra: callbacks).

Its own small module because Hydra builds it at the start of every run, single runs and
predict.py included: the leaderboard's matplotlib (and pandas) are imported only when a multirun
ends, not on every start (0.7-0.8 s of matplotlib alone on a 2-core CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback

from kmnist.errors import FAILED_JOB_FILE

log = logging.getLogger(__name__)


class LeaderboardCallback(Callback):
    """Write the leaderboard when a multirun ends. A report must never turn a finished sweep into
    a failure, so any error is logged as a warning; a job that crashed (kmnist.tasks.wrapper.sweep_job)
    does: the sweep exits 1 after ranking the others."""

    before: dict[Path, tuple[int, int]] | None = None  # the failed.txt files there when this multirun started

    @staticmethod
    def failed_jobs(sweep_dir) -> dict[Path, tuple[int, int]]:
        """Each job's failed.txt, by what tells one written anew (a job removes its own when it starts,
        and the file is renamed into place): its inode and modification time."""
        found = {}
        for path in Path(sweep_dir).glob(f"*/{FAILED_JOB_FILE}"):
            try:
                stat = path.stat()
            except OSError:  # gone meanwhile: a job removing its own as it starts again
                continue
            found[path] = (stat.st_ino, stat.st_mtime_ns)
        return found

    def on_multirun_start(self, config, **kwargs) -> None:
        # Not a clock: a file's time is the file server's and as coarse as its file system's (2 s
        # on FAT), and a crash of this launch stamped before its start would go unreported.
        self.before = self.failed_jobs(config.hydra.sweep.dir)

    def on_multirun_end(self, config, **kwargs) -> None:
        try:
            from kmnist.report.sweep import write_leaderboard

            # The jobs' own leaderboard_metric first (a run can derive another: dev/acc when it validates on
            # data.val_file alone), then the composed one.
            fallback = config.get("leaderboard_metric") or config.get("optimized_metric", "val/acc")
            write_leaderboard(config.hydra.sweep.dir, fallback=fallback)
        except Exception as error:  # noqa: BLE001 - see the class docstring
            log.warning("could not write the sweep leaderboard: %s", error)
        # A resumed Optuna study (or a fixed hydra.sweep.dir) keeps the crashed jobs of its earlier
        # launches: they stay ranked as failed, but only a crash of this launch fails this one.
        # What failed.txt was there at the start, unchanged, is an earlier launch's.
        crashed = sorted(
            p
            for p, seen in self.failed_jobs(config.hydra.sweep.dir).items()
            if (self.before or {}).get(p) != seen
        )
        if crashed:  # ranked without them; the exit status still says so, as Hydra's would have
            jobs = ", ".join(p.parent.name for p in crashed)
            raise SystemExit(
                f"error: {len(crashed)} job{'s' if len(crashed) > 1 else ''} of this sweep crashed "
                f"(job {jobs}: {crashed[0].read_text().strip()}); "
                f"the others are ranked in {config.hydra.sweep.dir}/leaderboard.md"
            )
