"""The human comparison tables (issue 30, docs/human_norms.md), for the report's "Personas and people" section
and ``valuescope show``: per run, each persona group's distance to its human group's profile beside the
no-persona baseline's, and the political gap's r and slope, every number with its 95% interval, read from the
metrics table (``analysis.metrics.human``). A run whose study asks for the comparison without a norms file gets
one line saying so."""

from __future__ import annotations

import pandas as pd

from valuescope.analysis.metrics import METRIC_COLUMNS
from valuescope.analysis.metrics.human import METRICS as HUMAN_METRICS
from valuescope.output.numbers import fmt_ci, fmt_num
from valuescope.output.report.tables import Table

#: what the section's caption says; one definition for the report and docs/human_norms.md's wording
DEFINITIONS = (
    "Distance = root mean squared difference, over the dimensions, between a persona group's profile and its "
    "human group's means (score scale), with the sampling noise of the group's mean (variance / n per "
    "dimension) subtracted from the squared difference, 0 where that leaves nothing; the baseline's is the "
    "no-persona answer's, one profile, no interval, its answer noise not subtracted; "
    "gap = the model's b − a difference over dimensions against the human one: r = their Pearson correlation, "
    "slope = ⟨model gap, human gap⟩ / ⟨human gap, human gap⟩ (1 = the human gap, > 1 exaggerated, 0 to 1 "
    "flattened, 0 none, < 0 reversed). Intervals: 95% bootstrap over personas within each group (percentile for "
    "the gap; for the distance, the noise-corrected square ± t × its bootstrap sd); the human means are taken "
    "as fixed.")


def human_rows(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """The human comparison rows of a metrics table (every documented column), possibly none."""
    if metrics is None or metrics.empty or "metric" not in metrics.columns:
        return pd.DataFrame(columns=METRIC_COLUMNS)
    return metrics[metrics["metric"].isin(HUMAN_METRICS)].reindex(columns=METRIC_COLUMNS)


def human_tables(metrics: pd.DataFrame, model: str = "") -> tuple[list[Table], list[str]]:
    """(tables, notes): a distance table and a gap table per instrument, and the lines of a run that has no
    numbers (why: no norms file, no grouping attribute)."""
    rows = human_rows(metrics)
    if rows.empty:
        return [], []
    prefix = f"{model}: " if model else ""
    tables: list[Table] = []
    notes = [f"{prefix}{n}" for n in dict.fromkeys(rows.loc[rows["value"].isna() & (rows["n"] == 0), "note"])
             if str(n)]
    rows = rows[~(rows["value"].isna() & (rows["n"] == 0))]
    for inst, g in rows.groupby("instrument", sort=False):
        dist = g[g["metric"] == "human_distance"].set_index("dimension")
        base = g[g["metric"] == "human_distance_baseline"].set_index("dimension")
        groups = list(dict.fromkeys([*dist.index, *base.index]))
        if groups:
            body = [[str(grp), fmt_num(int(dist.loc[grp, "n"])) if grp in dist.index else "–",
                     fmt_ci(*dist.loc[grp, ["value", "ci_low", "ci_high"]]) if grp in dist.index else "–",
                     fmt_num(base.loc[grp, "value"]) if grp in base.index else "–"] for grp in groups]
            tables.append(Table(f"{prefix}{inst}: distance of each persona group to its people (score scale)",
                                ["human group", "personas", "distance [95% CI]", "baseline's distance"], body))
        gap = g[g["metric"].isin(["political_gap_r", "political_gap_slope"])]
        if len(gap):
            body = []
            for label, pair in gap.groupby("dimension", sort=False):
                by = pair.set_index("metric")

                def cell(metric: str, by: pd.DataFrame = by) -> str:
                    return fmt_ci(*by.loc[metric, ["value", "ci_low", "ci_high"]]) if metric in by.index else "–"

                body.append([str(label), fmt_num(int(pair["n"].iloc[0])), cell("political_gap_r"),
                             cell("political_gap_slope")])
            t = Table(f"{prefix}{inst}: the model's political gap against the people's",
                      ["gap", "personas", "r [95% CI]", "slope [95% CI]"], body)
            t.notes += [str(n) for n in dict.fromkeys(gap["note"]) if str(n)]
            tables.append(t)
    return tables, notes


def report_human_tables(runs: list) -> tuple[list[Table], list[str]]:
    """The report's human comparison tables and notes, over every run (titled with the model when several)."""
    tables: list[Table] = []
    notes: list[str] = []
    for run in runs:
        t, n = human_tables(run.metrics, run.model if len(runs) > 1 else "")
        tables += t
        notes += n
    return tables, notes
