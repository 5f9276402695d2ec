"""Which way a metric improves, by its name: one rule for checkpoints, early stopping, Optuna's
direction (the `metric_mode` / `metric_direction` resolvers) and the sweep leaderboard's order."""

from __future__ import annotations


def lower_is_better(metric: str) -> bool:
    """Losses and errors go down (val/loss, dev/err); everything else (accuracies) goes up."""
    return any(word in str(metric).lower() for word in ("loss", "err"))
