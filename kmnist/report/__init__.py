"""Reports: training curves, evaluation plots and tables, batch previews, sweep leaderboards.

Exports load lazily, so `python -m kmnist.report.sweep` and the Hydra callback don't import
torch (seconds) just to read a few JSON files."""

from __future__ import annotations

from kmnist.lazy import lazy_exports

_EXPORTS = {
    "digit_labels": "kmnist.report.labels",
    "kannada_font": "kmnist.report.labels",
    "plot_curves": "kmnist.report.curves",
    "evaluate": "kmnist.report.evaluation",
    "plot_batch": "kmnist.report.batch",
    "gather": "kmnist.report.sweep",
    "write_leaderboard": "kmnist.report.sweep",
    "LeaderboardCallback": "kmnist.report.sweep",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
