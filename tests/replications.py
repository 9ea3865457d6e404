"""Known-truth replications: only the metric families a test reads, on simulated tables.

``compute_metrics`` computes every family of the long table (position bias, seed rows, the convergence curve,
...) for every replication; a coverage or false-positive-rate test reads one or two of them. ``family_metrics``
calls the family functions that ``compute_metrics`` calls, with the same group, seed and arguments, so its rows
are the same rows (bit-identical: tested in test_recovery.py), at a fraction of the cost.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from valuescope.analysis.metrics._common import GROUP_KEYS, metrics_frame
from valuescope.analysis.metrics.dimension_metrics import dimension_metric_rows
from valuescope.analysis.metrics.stability import stability_rows
from valuescope.analysis.metrics.variance import repeat_design, variance_rows

FAMILIES = ("dimension", "stability", "variance")


def _group(df: pd.DataFrame) -> tuple[Any, Any, Any]:
    keys = df[GROUP_KEYS].drop_duplicates()
    assert len(keys) == 1, "one (run, model, instrument) group per table"
    return tuple(keys.iloc[0])


def family_metrics(resp: pd.DataFrame, scores: pd.DataFrame | None = None, *, families: tuple[str, ...],
                   n_boot: int, n_perm: int = 0, seed: int = 0) -> pd.DataFrame:
    """The rows of ``compute_metrics(resp, scores, n_boot=, n_perm=, seed=)`` of the named families
    (``dimension``: inertia, concentration, steerability; ``stability``: Rank-Order, Ipsative, distance to
    neutral; ``variance``: ICC and the variance split) for a table of one (run, model, instrument)."""
    assert set(families) <= set(FAMILIES), families
    group = _group(resp)
    rows: list[dict[str, Any]] = []
    if "dimension" in families:
        rows.extend(dimension_metric_rows(resp, group, n_boot=n_boot, n_perm=n_perm, seed=seed))
    if scores is not None:
        s = scores if "repeat" in scores.columns else scores.assign(repeat=0)
        if "stability" in families:
            rows.extend(stability_rows(s, group, n_boot=n_boot, seed=seed))
        if "variance" in families:
            rows.extend(variance_rows(s, group, level=None, n_boot=n_boot, seed=seed, design=repeat_design(resp)))
    return metrics_frame(rows)
