"""Figures drawn from the answers themselves (tidy responses / persona scores) of one run.

Each function takes a :class:`RunData` and returns ``[(label, Figure), ...]`` (one per instrument),
or raises :class:`Skip` with the reason it cannot be drawn.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from valuescope.analysis.metrics.effects import MIN_GROUP
from valuescope.output.report.data import RunData
from valuescope.output.report.derive import (
    Skip,
    base_context,
    baseline_profile,
    context_labels,
    eta_squared,
    metric_context,
    overall_mask,
    pca,
    persona_profiles,
)
from valuescope.output.report.plotting import (
    WIDTH,
    model_color,
    new_figure,
    option_cmap,
    option_colors,
    plain_log_axes,
    short,
    top_legend,
)

Figures = list[tuple[str, Figure]]


def _instruments(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["instrument"].astype(str))) if "instrument" in frame else []


def _need_responses(run: RunData) -> pd.DataFrame:
    r = run.responses
    if r is None or r.empty:
        raise Skip("the run has no answers (empty responses table)")
    return r


def _opt_label(i: int, k: int) -> str:
    return f"{i + 1}" + (" (lowest)" if i == 0 else " (highest)" if i == k - 1 else "")


def _k(frame: pd.DataFrame) -> int:
    return int(pd.to_numeric(frame["k"], errors="coerce").max())


# --------------------------------------------------------------------------- micro


def micro(run: RunData, max_personas: int = 120) -> Figures:
    """Item x persona heatmap of the chosen option (argmax, scale order) per instrument."""
    r = _need_responses(run)
    ctx = base_context(r)
    out: Figures = []
    for inst in _instruments(r):
        d = r[(r["instrument"] == inst) & (r["context"].astype(str) == ctx)]
        d = d[d["repeat"] == d["repeat"].min()].drop_duplicates(["persona_id", "item_id"])
        personas = list(dict.fromkeys(d.loc[d["condition"] == "persona", "persona_id"]))
        shown = personas[:max_personas]
        has_base = (d["condition"] == "baseline").any()
        cols = (["baseline"] if has_base else []) + shown
        items = (
            d.assign(_dim=d["dimension"].fillna("(catch)").astype(str))
            .sort_values(["_dim", "position"], kind="stable")
            .drop_duplicates("item_id")
        )
        grid = (
            d.assign(_a=pd.to_numeric(d["argmax"], errors="coerce").astype("float64").fillna(0.0))
            .pivot_table(index="item_id", columns="persona_id", values="_a", aggfunc="first")
            .reindex(index=items["item_id"], columns=cols)
            .fillna(0)
        )
        k = _k(d)
        h = min(11.0, max(3.2, 0.13 * len(items) + 1.6))
        fig = new_figure(WIDTH, h)
        ax = fig.add_subplot()
        ax.imshow(
            grid.to_numpy(dtype=float),
            aspect="auto",
            cmap=option_cmap(k),
            vmin=-0.5,
            vmax=k + 0.5,
            interpolation="nearest",
        )
        dims = items["_dim"].to_numpy()
        edges = [i for i in range(1, len(dims)) if dims[i] != dims[i - 1]]
        for e in edges:
            ax.axhline(e - 0.5, color="white", lw=1.6)
        if has_base:
            ax.axvline(0.5, color="black", lw=1.2)
        starts = [0, *edges]
        ends = [*edges, len(dims)]
        ax.set_yticks(
            [(s + e - 1) / 2 for s, e in zip(starts, ends, strict=True)], [short(dims[s], 26) for s in starts]
        )
        ax.tick_params(axis="y", length=0)
        if len(cols) <= 40:
            ax.set_xticks(range(len(cols)), [short(c, 14) for c in cols], rotation=90)
        else:
            ax.set_xticks([0] if has_base else [], ["baseline"] if has_base else [])
        ax.set_xlabel(
            f"persona ({len(shown)} shown of {len(personas)}"
            + ("; first column = baseline, no persona" if has_base else "")
            + ")"
        )
        ax.set_title(f"{inst} — chosen option per item (rows, grouped by dimension) and persona (columns)")
        handles = [Patch(color=c, label=_opt_label(i, k)) for i, c in enumerate(option_colors(k))]
        handles.append(Patch(color=option_cmap(k)(0), label="invalid"))
        ax.legend(
            handles=handles,
            title="option (scale order)",
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            fontsize=7,
        )
        out.append((inst, fig))
    if not out:
        raise Skip("no instrument in the responses table")
    return out


# --------------------------------------------------------------------------- macro


def macro(run: RunData) -> Figures:
    """Mean answer distribution per dimension, baseline against personas, as stacked bars."""
    r = _need_responses(run)
    r = r[r["valid"].astype(bool) & r["dimension"].notna()]
    if r.empty:
        raise Skip("no valid answer to a scored item")
    ctx = base_context(r)
    r = r[r["context"].astype(str) == ctx]
    out: Figures = []
    for inst in _instruments(r):
        d = r[r["instrument"] == inst]
        k = _k(d)
        pcols = [f"p_{i + 1}" for i in range(k)]
        dist = d.groupby(["dimension", "condition"])[pcols].mean().fillna(0.0)
        dist = dist.div(dist.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
        dims = sorted(d["dimension"].astype(str).unique())
        conds = [c for c in ("baseline", "persona") if c in set(d["condition"])]
        fig = new_figure(WIDTH, min(11.0, max(2.6, 0.36 * len(dims) * len(conds) + 1.4)))
        ax = fig.add_subplot()
        colors = option_colors(k)
        labels, y = [], 0.0
        ypos = []
        for dim in dims:
            for cond in conds:
                if (dim, cond) not in dist.index:
                    continue
                left = 0.0
                for i, p in enumerate(dist.loc[(dim, cond)].to_numpy()):
                    ax.barh(y, p, left=left, color=colors[i], height=0.8, edgecolor="white", linewidth=0.4)
                    if p >= 0.08:
                        ax.text(
                            left + p / 2,
                            y,
                            f"{p:.0%}",
                            ha="center",
                            va="center",
                            fontsize=6.5,
                            color="black" if 0.25 < (i / max(k - 1, 1)) < 0.75 else "white",
                        )
                    left += p
                ypos.append(y)
                labels.append(f"{short(dim, 24)} · {'baseline' if cond == 'baseline' else 'personas'}")
                y += 1
            y += 0.5
        ax.set_yticks(ypos, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of probability mass on each option (mean over items and personas)")
        ax.set_title(f"{inst} — answer distribution per dimension")
        ax.legend(
            handles=[Patch(color=c, label=_opt_label(i, k)) for i, c in enumerate(colors)],
            title="option",
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
        )
        out.append((inst, fig))
    return out


# --------------------------------------------------------------------------- convergence


def convergence_fig(run: RunData) -> Figures:
    """Variance of dimension means against the number of personas: the metrics table's convergence_var."""
    m = run.metrics
    rows = m[m["metric"] == "convergence_var"] if not m.empty and "metric" in m else pd.DataFrame()
    if rows.empty:
        raise Skip("the metrics table has no convergence_var rows")
    out: Figures = []
    for inst in _instruments(rows):
        r = rows[rows["instrument"] == inst]
        ctx = metric_context(r)
        data = r[context_labels(r["context_a"]) == ctx][["dimension", "n", "value"]].dropna()
        if data.empty:
            continue
        dims = list(dict.fromkeys(data["dimension"].astype(str)))
        fig = new_figure(WIDTH * (0.8 if len(dims) <= 10 else 1.0), 3.6 if len(dims) <= 10 else 4.4)
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["tab20"]
        for i, dim in enumerate(dims):
            g = data[data["dimension"].astype(str) == dim].sort_values("n")
            ax.plot(g["n"], g["value"], marker="o", ms=3, lw=1.3, color=cmap(i % 20), label=short(dim, 26))
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axes(ax)
        ax.set_xlabel("number of personas n")
        ax.set_ylabel("variance of the dimension mean")
        ax.set_title(f"{inst} — variance of dimension means against n (context {ctx})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 if len(dims) <= 12 else 2)
        out.append((inst, fig))
    if not out:
        raise Skip("every convergence_var row is NaN")
    return out


# --------------------------------------------------------------------------- PCA


def _color_attribute(info: pd.DataFrame, coords: np.ndarray, chosen: str | None) -> tuple[str | None, float]:
    """The attribute to colour by and its eta^2 on PC1; eta^2 is NaN (not shown) unless every level has
    at least ``MIN_GROUP`` personas: with a persona or two per level it is near 1 whatever the model does.
    Without a choice: the attribute whose eta^2 is largest among those whose groups are all big enough,
    else the one with the fewest levels."""

    def eta(col: str) -> float:
        groups = info[col].fillna("NA")
        if groups.value_counts().min() < MIN_GROUP:
            return float("nan")
        return eta_squared(coords[:, 0], groups)

    if chosen:
        col = chosen if chosen in info.columns else f"attr_{chosen}"
        if col in info.columns:
            return col, eta(col)
    cands = [c for c in info.columns if 2 <= info[c].nunique(dropna=True) <= 12]
    if not cands:
        return None, float("nan")
    scored = [(eta(c), c) for c in cands]
    ok = [t for t in scored if t[0] == t[0]]
    if ok:
        best = max(ok, key=lambda t: t[0])
        return best[1], best[0]
    col = min(cands, key=lambda c: (info[c].nunique(dropna=True), c))
    return col, float("nan")


def pca_fig(run: RunData, color_by: str | None = None) -> Figures:
    """PC1 x PC2 of persona value profiles per instrument, coloured by an attribute."""
    insts = _instruments(run.scores) or _instruments(run.responses)
    out: Figures = []
    reasons = []
    for inst in insts:
        matrix, info = persona_profiles(run.scores, run.responses, inst)
        matrix = matrix.dropna(how="any")
        if len(matrix) < 3 or matrix.shape[1] < 2:
            reasons.append(f"{inst}: needs >= 3 personas and >= 2 dimensions, got {matrix.shape}")
            continue
        info = info.reindex(matrix.index)
        coords, ratio, loadings = pca(matrix)
        col, eta = _color_attribute(info, coords, color_by)
        fig = new_figure(WIDTH * 0.8, 4.4)
        ax = fig.add_subplot()
        if col is None:
            ax.scatter(coords[:, 0], coords[:, 1], s=18, color=model_color(0), alpha=0.8)
        else:
            levels = sorted(info[col].fillna("NA").astype(str).unique())
            for i, lev in enumerate(levels):
                mask = (info[col].fillna("NA").astype(str) == lev).to_numpy()
                ax.scatter(
                    coords[mask, 0],
                    coords[mask, 1],
                    s=18,
                    alpha=0.8,
                    color=model_color(i),
                    label=short(lev, 24),
                )
            ax.legend(
                title=f"{col.removeprefix('attr_')} (η² on PC1 = {eta:.2f})" if eta == eta
                else f"{col.removeprefix('attr_')} (no η²: a level has < {MIN_GROUP} personas)",
                loc="upper left",
                bbox_to_anchor=(1.01, 1),
            )
        base = baseline_profile(run.scores, run.responses, inst)
        if base is not None and set(matrix.columns) <= set(base.index):
            centre = matrix.to_numpy(dtype=float).mean(axis=0)
            xy = (base.reindex(matrix.columns).to_numpy(dtype=float) - centre) @ loadings
            ax.scatter([xy[0]], [xy[1]], marker="*", s=180, color="black", zorder=5)
            ax.annotate(
                "baseline (no persona)", (xy[0], xy[1]), textcoords="offset points", xytext=(8, 6), fontsize=8
            )
        top = np.argsort(-np.abs(loadings[:, 0]))[:3]
        tops = ", ".join(f"{short(matrix.columns[j], 16)} {loadings[j, 0]:+.2f}" for j in top)
        ax.axhline(0, color="#bbbbbb", lw=0.6, zorder=0)
        ax.axvline(0, color="#bbbbbb", lw=0.6, zorder=0)
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance; top loadings: {tops})")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%})")
        ax.set_title(
            f"{inst} — persona value profiles ({len(matrix)} personas × {matrix.shape[1]} dimensions)"
        )
        out.append((inst, fig))
    if not out:
        raise Skip("; ".join(reasons) or "no persona scores")
    return out


# --------------------------------------------------------------------------- variance split


_VAR_PARTS = (
    ("var_sampling", "sampling (asking again at temperature 1)", "#c9c9c9"),
    ("var_repeat", "between repeats (option order + conversation)", "#9db4d6"),
    ("var_persona", "between personas", "#d1603d"),
)


def variance_fig(run: RunData) -> Figures:
    """Where a persona's score varies, per dimension: the metrics table's var_sampling, var_repeat and
    var_persona rows (one context), with run_to_run_share in the labels."""
    m = run.metrics
    names = [n for n, _, _ in _VAR_PARTS]
    rows = m[m["metric"].isin(names)] if not m.empty and "metric" in m else pd.DataFrame()
    if rows.empty:
        raise Skip("the metrics table has no variance rows (var_sampling, var_repeat, var_persona)")
    out: Figures = []
    reasons = []
    for inst in _instruments(rows):
        r = m[(m["instrument"] == inst)]
        ctx = metric_context(r[r["metric"].isin(names)])
        r = r[(context_labels(r["context_a"]) == ctx) & ~overall_mask(r["dimension"])]
        data = r[r["metric"].isin(names)].pivot_table(index="dimension", columns="metric", values="value",
                                                       aggfunc="first", dropna=False).reindex(columns=names)
        if data.empty or not np.isfinite(data.to_numpy(dtype=float)).any():
            notes = r[r["metric"] == "var_repeat"]["note"].astype(str)
            reasons.append(f"{inst}: " + (notes.iloc[0] if len(notes) and notes.iloc[0] else "no variance values"))
            continue
        share = r[r["metric"] == "run_to_run_share"].set_index("dimension")["value"]
        fig = new_figure(WIDTH, 3.6)
        ax = fig.add_subplot()
        x = np.arange(len(data))
        width = 0.8 / len(_VAR_PARTS)
        for i, (name, label, color) in enumerate(_VAR_PARTS):
            ax.bar(x - 0.4 + width * (i + 0.5), data[name].to_numpy(dtype=float), width * 0.92, color=color,
                   label=label)
        labels = [short(str(d), 22) + (f"\nrun share {share[d]:.2f}" if d in share and np.isfinite(share[d]) else "")
                  for d in data.index]
        ax.set_xticks(x, labels, rotation=35 if len(x) > 6 else 0, ha="right" if len(x) > 6 else "center")
        ax.set_ylabel("variance of the dimension score")
        ax.set_title(f"{inst} — where a persona's score varies (context {ctx})")
        top_legend(fig, ax, 3)
        out.append((inst, fig))
    if not out:
        raise Skip("; ".join(dict.fromkeys(reasons)) or "no persona scores")
    return out
