"""Two runs side by side: A, B and A - B with intervals per (instrument, dimension, metric), as a frame
(:func:`difference_frame`, which ``Run.difference`` returns) and as the report's and ``show A B``'s tables."""

from __future__ import annotations

import math

import pandas as pd

from valuescope.analysis.metrics.paired import paired_interval
from valuescope.output.numbers import as_float, fmt_ci
from valuescope.output.report.data import RunData
from valuescope.output.report.derive import overall_mask
from valuescope.output.report.tables import LABELS, Table

#: the metrics a two-run comparison shows per dimension (answers and probabilities readings)
DIFFERENCE_METRICS = ("inertia_hard", "inertia_soft", "steerability_jsd_hard", "steerability_jsd_soft")


def mover_difference(a: float, a_lo: float, a_hi: float, b: float, b_lo: float, b_hi: float
                     ) -> tuple[float, float, float]:
    """A - B with its 95% interval from the two runs' own intervals (MOVER, Zou & Donner 2008): exact for
    independent runs with normal-like intervals; conservative (too wide) when the runs share personas,
    whose estimates are positively correlated."""
    d = a - b
    lo = d - math.sqrt((a - a_lo) ** 2 + (b_hi - b) ** 2)
    hi = d + math.sqrt((a_hi - a) ** 2 + (b - b_lo) ** 2)
    return d, lo, hi


def difference_frame(a: pd.DataFrame, b: pd.DataFrame, responses_a: pd.DataFrame | None = None,
                     responses_b: pd.DataFrame | None = None) -> pd.DataFrame:
    """Two runs' long metrics tables side by side: per (instrument, dimension, metric) of
    ``DIFFERENCE_METRICS`` both have, A and B with their 95% intervals and A - B with its. With both runs'
    responses, a paired bootstrap over the personas they share (``analysis.metrics.paired``) where they share
    them; elsewhere :func:`mover_difference` (without an interval where a run's is missing). ``interval``
    names which: ``paired``, ``independent`` or ``none``."""
    def rows_of(m: pd.DataFrame) -> pd.DataFrame:
        m = m[m["metric"].isin(DIFFERENCE_METRICS)]
        if "context_a" in m:
            m = m[overall_mask(m["context_a"]) | m["context_a"].astype(str).isin(["none", "persona"]).to_numpy()]
        m = m[~overall_mask(m["dimension"])]
        return m.drop_duplicates(["instrument", "dimension", "metric"]).set_index(["instrument", "dimension", "metric"])

    ma, mb = rows_of(a), rows_of(b)
    paired: dict[tuple[str, str, str, str], float] = {}
    if responses_a is not None and responses_b is not None and len(responses_a) and len(responses_b):
        from valuescope.analysis.metrics.paired import paired_sd
        from valuescope.analysis.tables import split_readings

        sds = paired_sd(split_readings(responses_a)[0], split_readings(responses_b)[0])
        paired = {(r.instrument, r.context, r.dimension, r.metric): r.sd for r in sds.itertuples(index=False)
                  if math.isfinite(r.sd)}
    out = []
    for key in (k for k in ma.index if k in mb.index):
        va, la, ha = (as_float(ma.loc[key][c]) for c in ("value", "ci_low", "ci_high"))
        vb, lb, hb = (as_float(mb.loc[key][c]) for c in ("value", "ci_low", "ci_high"))
        nan = float("nan")
        ctx = str(ma.loc[key]["context_a"]) if "context_a" in ma else ""
        same_ctx = "context_a" not in mb or str(mb.loc[key]["context_a"]) == ctx
        sd = paired.get((key[0], ctx, key[1], key[2])) if same_ctx else None
        how = "none"
        if va is None or vb is None:
            d = (nan, nan, nan)
        elif sd is not None:
            d, how = (va - vb, *paired_interval(va - vb, sd)), "paired"
        elif None in (la, ha, lb, hb):
            d = (va - vb, nan, nan)
        else:
            d, how = mover_difference(va, la, ha, vb, lb, hb), "independent"
        out.append([*key, *(nan if x is None else x for x in (va, la, ha, vb, lb, hb)), *d, how])
    return pd.DataFrame(out, columns=["instrument", "dimension", "metric", "a", "a_low", "a_high", "b", "b_low",
                                      "b_high", "diff", "diff_low", "diff_high", "interval"])


#: how a difference's interval was made, as the table says it
DIFF_HOW = {"paired": "paired", "independent": "independent", "none": "–"}


def difference_tables(runs: list[RunData]) -> list[Table]:
    """Two runs side by side, one table per instrument: per dimension and metric A [CI], B [CI] and A - B [CI]
    (:func:`difference_frame`)."""
    if len(runs) != 2:
        return []
    a, b = runs
    if any(r.metrics is None or r.metrics.empty for r in runs):
        return []
    frame = difference_frame(a.metrics, b.metrics, a.responses, b.responses)
    label_a = a.model if a.model != b.model else a.run_id
    label_b = b.model if a.model != b.model else b.run_id
    out = []
    for inst, g in frame.groupby("instrument", sort=False):
        rows = [[str(r.dimension), LABELS.get(r.metric, r.metric), fmt_ci(r.a, r.a_low, r.a_high),
                 fmt_ci(r.b, r.b_low, r.b_high), fmt_ci(r.diff, r.diff_low, r.diff_high), DIFF_HOW[r.interval]]
                for r in g.itertuples(index=False)]
        notes = [f"A = {a.run_id} ({a.model}), B = {b.run_id} ({b.model}). A − B interval per row: 'paired' = "
                 "a paired bootstrap over the personas both runs share (the same draw of personas in both); "
                 "'independent' = from the two runs' 95% intervals (MOVER, Zou & Donner 2008), exact for "
                 "independent runs, too wide (conservative) when they share personas."]
        out.append(Table(f"{inst} — A vs B (value [95% CI])", ["dimension", "metric", f"A: {label_a}",
                                                              f"B: {label_b}", "A − B", "A − B CI"], rows, notes))
    return out
