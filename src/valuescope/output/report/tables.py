"""Tables of the report as plain lists of strings (the template escapes every cell)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from valuescope.analysis.metrics.human import METRICS as HUMAN_METRICS
from valuescope.core.levels import ALPHA
from valuescope.output.numbers import as_float, fmt_ci, fmt_num
from valuescope.output.report.data import RunData
from valuescope.output.report.derive import (
    PAIR_METRICS,
    contrast_label,
    fcr_intervals,
    grid_context,
    is_overall,
    overall_mask,
    pair_table,
)

#: order of the columns of the headline table; other metrics follow alphabetically. Every name says its
#: reading: _hard = the answers (the chosen option), _soft = the probabilities.
HEADLINE_ORDER = [
    "inertia_hard",
    "inertia_soft",
    "steerability_jsd_hard",
    "steerability_p_hard",
    "steerability_jsd_soft",
    "steerability_p_soft",
    "top1_share_hard",
    "top2_adjacent_hard",
    "top1_share_soft",
    "top2_adjacent_soft",
    "distance_to_neutral",
    "icc",
    "run_to_run_share",
    "var_persona",
    "var_repeat",
    "var_order",
    "var_conversation",
    "var_sampling",
    "var_between",
    "seed_corr_dimension",
]
HEADLINE_COLUMNS_PER_TABLE = 5  #: metric columns per headline table: wider tables are split so each fits a page
#: rows with tables of their own: position bias, the pair metrics, persona groups vs people (tables_human)
_NOT_HEADLINE = {"convergence_var", "position_bias_hard", "position_bias_soft", *PAIR_METRICS, *HUMAN_METRICS}


LABELS = {
    "inertia_hard": "Inertia (answers)",
    "inertia_soft": "Inertia (probabilities)",
    "steerability_jsd_hard": "Steerability JSD (answers)",
    "steerability_p_hard": "Steerability p (answers)",
    "steerability_jsd_soft": "Steerability JSD (probabilities)",
    "steerability_p_soft": "Steerability p (probabilities)",
    "top1_share_hard": "top-1 share (answers)",
    "top2_adjacent_hard": "top-2 adjacent (answers)",
    "top1_share_soft": "top-1 share (probabilities)",
    "top2_adjacent_soft": "top-2 adjacent (probabilities)",
    "distance_to_neutral": "distance to neutral",
    "icc": "ICC",
    "run_to_run_share": "run-to-run share",
    "var_persona": "var persona",
    "var_repeat": "var repeat",
    "var_order": "var option order",
    "var_conversation": "var conversation",
    "var_sampling": "var sampling",
    "var_between": "var of persona means",
    "seed_corr_dimension": "seed r (dimension)",
    "position_bias_hard": "position bias (answers)",
    "position_bias_soft": "position bias (probabilities)",
    "rank_order": "Rank-Order",
    "ipsative": "Ipsative",
}
_NUMBER = re.compile(r"^([-+−]?\d[\d,]*\.?\d*(e[-+]?\d+)?|–|< 0\.001|> -0\.001)( \[.*\]| \(.*\))?$")


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    @property
    def numeric(self) -> list[bool]:
        """Per column: every cell is a number (right-aligned in the page)."""
        cols = len(self.header)
        return [
            bool(self.rows) and all(_NUMBER.match(r[j]) for r in self.rows if j < len(r)) for j in range(cols)
        ]


def fmt(v: Any) -> str:
    """One cell in the shared number format (:mod:`valuescope.output.numbers`)."""
    return fmt_num(v)


def _num(v: Any) -> float | None:
    return as_float(v)


def counts_table(run: RunData) -> Table:
    """Queries, invalid answers and probability mass outside the letters (derived where not given)."""
    derived: dict[str, Any] = {}
    r = run.responses
    if r is not None and not r.empty:
        derived["queries"] = len(r)
        derived["invalid"] = int((~r["valid"].astype(bool)).sum())
        derived["personas"] = int(r.loc[r["condition"] == "persona", "persona_id"].nunique())
        derived["contexts"] = int(r["context"].nunique())
        derived["instruments"] = ", ".join(dict.fromkeys(r["instrument"].astype(str)))
        om = pd.to_numeric(r["outside_mass"], errors="coerce")
        if om.notna().any():
            derived["outside_mass"] = float(om.mean())
    given = dict(run.counts or {})
    if "outside_mass_mean" in given:  # one row per quantity: the stored counts' name wins
        derived.pop("outside_mass", None)
    merged = {**derived, **given}
    labels = {
        "outside_mass": "mean probability mass outside the option letters",
        "outside_mass_mean": "mean probability mass outside the option letters",
        "outside_mass_max": "largest probability mass outside the option letters",
        "invalid": "invalid answers (could not be read)",
        "methods": "answers read by",
        "reused_from": "answers reused from other runs",
        "baseline": "baseline (no persona) asked",
    }
    rows = []
    for key, value in merged.items():
        label = labels.get(key, key.replace("_", " "))
        if isinstance(value, dict):
            value = ", ".join(f"{fmt(int(n))} by {k}" if key == "methods" else f"{fmt(int(n))} from {k}"
                              for k, n in value.items()) or "none"
        elif key == "invalid" and merged.get("queries"):
            value = f"{fmt(value)} ({int(value) / int(merged['queries']):.1%})"
        rows.append([label, value if isinstance(value, str) else fmt(value)])
    return Table(f"Counts — {run.model}", ["", "value"], rows)


def headline_tables(runs: list[RunData]) -> list[Table]:
    """One table per instrument: dimension (x model) rows, one column per headline metric, value [CI]."""
    frames = [r.metrics for r in runs if r.metrics is not None and not r.metrics.empty]
    if not frames:
        return []
    m = pd.concat(frames, ignore_index=True)
    m = m[~m["metric"].isin(_NOT_HEADLINE)]  # evidence instruments: their own tables (tables_tension)
    m = m[~m["instrument"].isin(m.loc[m["metric"].str.startswith("evidence_"), "instrument"])]
    if "context_a" in m:
        m = m[overall_mask(m["context_a"]) | m["context_a"].astype(str).isin(["none", "persona"]).to_numpy()]
    several = len({r.model for r in runs}) > 1
    out = []
    for inst in dict.fromkeys(m["instrument"].astype(str)):
        d = m[m["instrument"].astype(str) == inst]
        d = d.assign(_dim=["all dimensions" if is_overall(x) else str(x) for x in d["dimension"]])
        metrics = [x for x in HEADLINE_ORDER if x in set(d["metric"])]
        metrics += sorted(set(d["metric"]) - set(metrics))
        rows = []
        dims = list(dict.fromkeys(d["_dim"]))
        dims = sorted(dims, key=lambda x: x == "all dimensions")  # stable: the overall row goes last
        for dim in dims:
            for model in dict.fromkeys(d["model"].astype(str)):
                g = d[(d["_dim"] == dim) & (d["model"].astype(str) == model)]
                if g.empty:
                    continue
                cells = []
                for name in metrics:
                    x = g[g["metric"] == name]
                    cells.append(fmt_ci(*x.iloc[0][["value", "ci_low", "ci_high"]]) if len(x) else "–")
                rows.append(([dim, model] if several else [dim]) + cells)
        notes = sorted({str(n) for n in d.get("note", pd.Series(dtype=object)).dropna() if str(n).strip()})
        keys = 2 if several else 1
        header = (["dimension", "model"] if several else ["dimension"]) + [LABELS.get(x, x) for x in metrics]
        # a metric column with no value and a row with no value say nothing: left out (their notes stay)
        keep = [j for j in range(keys, len(header)) if any(r[j] != "–" for r in rows)]
        rows = [r for r in rows if any(r[j] != "–" for j in keep)]
        parts = [keep[i:i + HEADLINE_COLUMNS_PER_TABLE] for i in range(0, len(keep), HEADLINE_COLUMNS_PER_TABLE)]
        for n, cols in enumerate(parts, start=1):
            part = f", part {n} of {len(parts)}" if len(parts) > 1 else ""
            out.append(Table(f"{inst} — headline metrics (value [95% CI]){part}",
                             header[:keys] + [header[j] for j in cols],
                             [r[:keys] + [r[j] for j in cols] for r in rows], notes if n == len(parts) else []))
    return out


def effects_tables(run: RunData, alpha: float = ALPHA, context: str | None = None) -> list[Table]:
    """The Hedges' g grid as tables, one per instrument: per (contrast, dimension) g with its 95% CI,
    the Benjamini-Hochberg q over the grid, the false-coverage-adjusted interval of the cells BH selects,
    and the group sizes. Cells without a d (a group below the minimum size) are counted in a note."""
    e = run.effects
    if e is None or e.empty:
        return []
    ctx = context or grid_context(e)
    e = e[e["context"].astype(str) == ctx] if ctx is not None and "context" in e else e
    e = fcr_intervals(e, alpha)
    out = []
    for inst in dict.fromkeys(e["instrument"].astype(str)):
        g = e[e["instrument"].astype(str) == inst]
        ok = g[pd.to_numeric(g["g"], errors="coerce").notna()]
        rows = [[contrast_label(r.attribute, r.level, r.reference), f"{int(r.n_level)} / {int(r.n_rest)}",
                 str(r.dimension), fmt_ci(r.g, r.g_low, r.g_high), fmt(_num(r.q)),
                 fmt_ci(r.g, r.g_low_adj, r.g_high_adj) if r.shown else "–"]
                for r in ok.itertuples(index=False)]
        notes = []
        missing = g[pd.to_numeric(g["g"], errors="coerce").isna()]
        if len(missing):
            why = missing["note"].astype(str).str.replace(r" \(n = .*\)$", "", regex=True).value_counts()
            notes += [f"{n} of {len(g)} cells have no g: {w}" for w, n in why.items() if w]
        if not ok["shown"].any():
            rows = [r[:-1] for r in rows]
            notes.append(f"no cell has q < {alpha:g}: no interval adjusted for selection to show")
        notes.append(f"q: Benjamini-Hochberg over the {int(pd.to_numeric(g['q'], errors='coerce').notna().sum())} "
                     f"tested cells of this grid; adjusted CI: the interval of a cell with q < {alpha:g}, widened "
                     "for the selection (false coverage rate, Benjamini & Yekutieli 2005); '–' = not selected.")
        ctx_s = f", context {ctx}" if ctx not in (None, "none") else ""
        header = ["contrast", "n level/ref", "dimension", "g [95% CI]", "q", "adjusted CI"]
        out.append(Table(f"{inst} — Hedges' g of persona attributes{ctx_s} — {run.model}",
                         header[:len(rows[0])] if rows else header, rows, notes))
    return out


def position_table(runs: list[RunData]) -> Table | None:
    """Position bias per run and instrument (from the metrics table), the first thing the report shows."""
    rows, notes = [], []
    for run in runs:
        m = run.metrics
        if m is None or m.empty:
            continue
        pb = m[m["metric"].isin(["position_bias_hard", "position_bias_soft"])]
        for inst in dict.fromkeys(pb["instrument"].astype(str)):
            g = pb[pb["instrument"].astype(str) == inst].set_index("metric")
            cells = []
            for name in ("position_bias_hard", "position_bias_soft"):
                if name in g.index:
                    r = g.loc[name]
                    cells.append(fmt_ci(r["value"], r["ci_low"], r["ci_high"]))
                    if str(r["note"]).strip():
                        notes.append(f"{run.model} · {inst}: {r['note']}")
                else:
                    cells.append("–")
            n = int(g["n"].max()) if len(g) else 0
            rows.append([run.model, inst, *cells, fmt(n)])
    if not rows:
        return None
    return Table("Position bias: the least share of the answers / probability that follows the letter shown, "
                 "whatever the option says (value [95% CI]; 0 = content only, 1 = letter only)",
                 ["model", "instrument", LABELS["position_bias_hard"], LABELS["position_bias_soft"], "answers"],
                 rows, sorted(set(notes)))


def position_warnings(runs: list[RunData]) -> list[str]:
    """Plain warnings for every run and instrument where at least ``position.WARN_AT_LEAST`` of the
    probability follows the letter shown (worded by ``position.warning_text``)."""
    from valuescope.analysis.metrics.position import warning_text

    out = []
    for run in runs:
        m = run.metrics
        if m is None or m.empty:
            continue
        pb = m[m["metric"] == "position_bias_soft"]
        for r in pb.itertuples(index=False):
            v = _num(r.value)
            text = warning_text(v) if v is not None else None
            if text:
                out.append(f"{run.model} · {r.instrument}: {text}. Read its inertia, steerability and stability "
                           "with that in mind.")
    return out


def comparison_table(frame: pd.DataFrame | None) -> Table | None:
    """The cross-run numbers of an ablation pair (metrics.ablation.compare_runs), or its reason for none."""
    if frame is None or frame.empty:
        return None
    kind = str(frame["comparison"].iloc[0])
    title = f"Ablation pair ({kind}): {frame['run_a'].iloc[0]} vs {frame['run_b'].iloc[0]}"
    if kind == "none":
        return Table(title, ["comparison"], [[str(frame["note"].iloc[0])]])
    rows = [[str(r.instrument), str(r.condition), str(r.context), str(r.metric), str(r.dimension) or "all items",
             fmt_ci(r.value, getattr(r, "ci_low", None), getattr(r, "ci_high", None)), fmt(int(r.n))]
            for r in frame.itertuples(index=False)]
    notes = sorted({str(n) for n in frame["note"] if str(n).strip()})
    return Table(title, ["instrument", "condition", "context", "metric", "dimension", "value [95% CI]", "n"], rows,
                 notes)


def pair_tables(runs: list[RunData]) -> list[Table]:
    """Rank-Order and Ipsative stability per context pair (mean over dimensions), one column per
    (instrument, metric), one table per model."""
    out = []
    for run in runs:
        cells: dict[tuple[str, str], dict[str, str]] = {}
        columns: list[str] = []
        for name in PAIR_METRICS:
            t = pair_table(run.metrics, name)
            for _, r in t.iterrows():
                col = f"{r['instrument']} · {LABELS[name]}"
                columns += [] if col in columns else [col]
                pair = (str(r["context_a"]), str(r["context_b"]))
                cells.setdefault(pair, {})[col] = fmt_ci(r["value"], r["ci_low"], r["ci_high"])
        if not cells:
            continue
        rows = [[f"{a} ↔ {b}", *(cells[(a, b)].get(c, "–") for c in columns)] for a, b in cells]
        out.append(
            Table(
                f"Stability per context pair — {run.model} (Spearman ρ, mean over dimensions)",
                ["contexts", *columns],
                rows,
            )
        )
    return out


def settings_json(study: dict[str, Any]) -> str:
    return json.dumps(study, indent=2, sort_keys=False, default=str)


def raw_answer_rows(run: RunData, limit: int = 8) -> list[list[str]]:
    """A sample of raw answer texts (invalid ones first): persona, instrument, item, status, raw."""
    r = run.responses
    if r is None or r.empty or "raw" not in r:
        return []
    d = r[r["raw"].notna() & (r["raw"].astype(str) != "")]
    d = pd.concat([d[~d["valid"].astype(bool)], d[d["valid"].astype(bool)]]).head(limit)
    return [
        [
            str(x.persona_id),
            str(x.instrument),
            str(x.item_id),
            "valid" if x.valid else f"invalid: {fmt(x.error)}",
            str(x.raw),
        ]
        for x in d.itertuples()
    ]
