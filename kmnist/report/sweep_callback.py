"""The Hydra callback that writes a sweep's leaderboard when a multirun ends (conf/hydra: callbacks).

Its own small module because Hydra builds it at the start of every run, single runs and
predict.py included: the leaderboard's matplotlib (and pandas) are imported only when a multirun
ends, not on every start (0.7-0.8 s of matplotlib alone on a 2-core CPU)."""

from __future__ import annotations

import logging

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)


class LeaderboardCallback(Callback):
    """Write the leaderboard when a multirun ends. A report must never turn a finished sweep into
    a failure, so any error is logged as a warning."""

    def on_multirun_end(self, config, **kwargs) -> None:
        try:
            from kmnist.report.sweep import write_leaderboard

            # The jobs' own leaderboard_metric first (a run can derive another: dev/acc when it validates on
            # data.val_file alone), then the composed one.
            fallback = config.get("leaderboard_metric") or config.get("optimized_metric", "val/acc")
            write_leaderboard(config.hydra.sweep.dir, fallback=fallback)
        except Exception as error:  # noqa: BLE001 - see the class docstring
            log.warning("could not write the sweep leaderboard: %s", error)
