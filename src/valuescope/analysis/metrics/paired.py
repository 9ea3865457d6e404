"""A - B of two runs that ask the same personas (two models, two contexts on one persona set): a paired
bootstrap over the shared personas.

Two runs of one persona set give positively correlated estimates (a persona that makes run A's answers
concentrated does so in run B too), so combining the runs' own intervals as if independent (MOVER,
``output.report.tables_compare.mover_difference``) is too wide. Here each bootstrap draw resamples the shared
persona ids once (``bootstrap_index``, ``N_BOOT`` draws) and recomputes the metric in both runs from the
same draw; the standard deviation of the replicated differences gives the interval
``diff -/+ z_{1-ALPHA/2} sd`` around the difference of the runs' reported estimates.

Paired here: inertia in both readings (``PAIRED_METRICS``), per (instrument, persona context, dimension)
where both runs hold answers from exactly the same personas with the same number of options. Steerability
keeps the independent combination: its interval also carries the variance of each run's baseline, which
resampling personas does not reproduce, and its bias corrections are per run (docs/metrics.md, "Two runs: A − B").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from valuescope.analysis.metrics._common import bootstrap_index, bootstrap_weights, group_rng, quiet, unit_ids
from valuescope.analysis.metrics.inertia import bootstrap_distributions, inertia_index, unit_sums
from valuescope.analysis.metrics.registry import N_BOOT
from valuescope.core.levels import ALPHA

#: the metrics whose A - B interval is a paired bootstrap when the runs share personas
PAIRED_METRICS = ("inertia_hard", "inertia_soft")
PAIRED_COLUMNS = ["instrument", "context", "dimension", "metric", "sd", "n_personas"]


def _persona_rows(responses: pd.DataFrame) -> pd.DataFrame:
    r = responses[(responses["condition"] == "persona") & responses["dimension"].notna()]
    return r.assign(_unit=unit_ids(r).to_numpy(), _ctx=r["context"].astype(str), _dim=r["dimension"].astype(str))


def paired_sd(a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Bootstrap SD of A - B per (instrument, context, dimension, metric of ``PAIRED_METRICS``) where the
    responses ``a`` and ``b`` (tidy tables, one reading each) hold the same >= 2 personas; no row elsewhere."""
    pa, pb = _persona_rows(a), _persona_rows(b)
    groups_b = dict(iter(pb.groupby(["instrument", "_ctx", "_dim"], sort=False)))
    out: list[list[Any]] = []
    for key, ga in pa.groupby(["instrument", "_ctx", "_dim"], sort=True):
        gb = groups_b.get(key)
        if gb is None:
            continue
        ks = set(ga["k"].dropna().unique()) | set(gb["k"].dropna().unique())
        units = sorted(set(ga["_unit"]))
        if len(ks) != 1 or len(units) < 2 or units != sorted(set(gb["_unit"])):
            continue
        k = int(ks.pop())
        weights = bootstrap_weights(bootstrap_index(group_rng(seed, "paired", *key), len(units), n_boot), len(units))
        soft_a, hard_a, _ = unit_sums(ga, k, units)
        soft_b, hard_b, _ = unit_sums(gb, k, units)
        for reading, sa, sb in (("hard", hard_a, hard_b), ("soft", soft_a, soft_b)):
            with quiet(), np.errstate(all="ignore"):
                diff = (inertia_index(bootstrap_distributions(sa, weights))
                        - inertia_index(bootstrap_distributions(sb, weights)))
            diff = diff[np.isfinite(diff)]
            sd = float(np.std(diff, ddof=1)) if diff.size >= 2 else float("nan")
            out.append([*key, f"inertia_{reading}", sd, len(units)])
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def paired_interval(diff: float, sd: float, alpha: float = ALPHA) -> tuple[float, float]:
    """``diff -/+ z_{1-alpha/2} sd``: the interval of A - B from the paired bootstrap's SD."""
    half = float(stats.norm.ppf(1 - alpha / 2)) * sd
    return diff - half, diff + half
