"""Figures drawn from the metrics and effects tables.

Each function returns ``[(label, Figure), ...]`` or raises :class:`Skip` with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from valuescope.core.levels import ALPHA
from valuescope.output.report.data import RunData
from valuescope.output.report.derive import (
    Skip,
    context_length,
    contrast_label,
    fcr_intervals,
    grid_context,
    overall_mask,
    pair_table,
    pick_metric,
)
from valuescope.output.report.plotting import WIDTH, model_color, new_figure, short, top_legend

Figures = list[tuple[str, Figure]]


def _all_metrics(runs: list[RunData]) -> pd.DataFrame:
    frames = [r.metrics for r in runs if r.metrics is not None and not r.metrics.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _bars_with_ci(ax, data: pd.DataFrame, models: list[str], dims: list[str]) -> None:
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(dims))
    for i, model in enumerate(models):
        g = data[data["model"] == model].set_index("_dim").reindex(dims)
        v = g["value"].to_numpy(dtype=float)
        lo = (v - g["ci_low"].to_numpy(dtype=float)).clip(min=0)
        hi = (g["ci_high"].to_numpy(dtype=float) - v).clip(min=0)
        err = np.vstack([np.nan_to_num(lo), np.nan_to_num(hi)])
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            v,
            width * 0.92,
            color=model_color(i),
            label=short(model, 40),
            yerr=err,
            capsize=2,
            error_kw={"lw": 0.8, "ecolor": "#333333"},
        )
    ax.set_xticks(
        x,
        [short(d, 26) for d in dims],
        rotation=35 if len(dims) > 5 else 0,
        ha="right" if len(dims) > 5 else "center",
    )


def inertia_steerability(runs: list[RunData]) -> Figures:
    """Inertia Index and Steerability JSD per dimension with CIs; one bar per model."""
    m = _all_metrics(runs)
    if m.empty:
        raise Skip("no metrics table in any run")
    inertia = pick_metric(m, "inertia_hard")
    steer = pick_metric(m, "steerability_jsd_hard")
    if inertia.empty and steer.empty:
        raise Skip("the metrics table has no inertia_hard / steerability_jsd_hard rows")
    models = list(dict.fromkeys(r.model for r in runs))
    both = pd.concat([inertia, steer], ignore_index=True)
    out: Figures = []
    for inst in dict.fromkeys(both["instrument"].astype(str)):
        panels = [("Inertia Index (answers, hard)", inertia), ("Steerability JSD (answers, hard)", steer)]
        panels = [
            (t, d[(d["instrument"] == inst) & ~overall_mask(d["dimension"])])
            for t, d in panels
            if not d.empty
        ]
        panels = [(t, d) for t, d in panels if not d.empty]
        if not panels:
            continue
        dims = list(dict.fromkeys(str(x) for _, d in panels for x in d["dimension"]))
        wide = len(dims) > 8
        fig = new_figure(WIDTH, 3.3 * (len(panels) if wide else 1))
        axes = fig.subplots(len(panels) if wide else 1, 1 if wide else len(panels), squeeze=False).ravel()
        for ax, (title, d) in zip(axes, panels, strict=True):
            d = d.assign(_dim=d["dimension"].astype(str))
            _bars_with_ci(ax, d, models, dims)
            ax.set_title(f"{inst} — {title}")
            ax.set_ylim(
                0,
                max(1.0, float(np.nanmax(d["ci_high"].fillna(d["value"]))) * 1.05)
                if title.startswith("Inertia")
                else None,
            )
            ax.set_ylabel(
                "0 = uniform, 1 = one option"
                if title.startswith("Inertia")
                else "0 = persona answers = baseline"
            )
        top_legend(fig, axes[0], len(models))
        out.append((inst, fig))
    if not out:
        raise Skip("no per-dimension inertia or steerability rows")
    return out


def effects_grid(run: RunData, alpha: float = ALPHA) -> Figures:
    """Hedges' g per (attribute = level) x dimension; diverging colours only where the cell's
    selection-adjusted interval excludes 0 (:func:`fcr_intervals`), every other cell grey and hatched;
    each row names its group sizes; a note under the grid where an attribute's reference level was not
    drawn (its levels are then compared with the rest)."""
    e = run.effects
    if e is None or e.empty:
        raise Skip("no effects table (Hedges' g grid) for this run")
    out: Figures = []
    ctx = grid_context(e)
    for inst in dict.fromkeys(e["instrument"].astype(str)):
        d = e[e["instrument"].astype(str) == inst]
        if ctx is not None and "context" in d:  # one grid: the questionnaire without conversation
            d = d[d["context"].astype(str) == ctx]
        d = fcr_intervals(d, alpha).dropna(subset=["g"])
        if d.empty:
            continue
        ref = d["reference"].astype(str) if "reference" in d else pd.Series("rest", index=d.index)
        d = d.assign(_row=[contrast_label(a, lv, rf) for a, lv, rf in zip(d["attribute"], d["level"], ref,
                                                                          strict=True)])
        sizes = d.groupby("_row").agg(n_level=("n_level", "max"), n_rest=("n_rest", "max"))
        grid = d.pivot_table(index="_row", columns="dimension", values="g", aggfunc="first")
        shown = d.assign(shown=d["shown"].astype(float)).pivot_table(
            index="_row", columns="dimension", values="shown", aggfunc="first")
        shown = shown.reindex(index=grid.index, columns=grid.columns).fillna(0).astype(bool)
        values = grid.to_numpy(dtype=float)
        vmax = float(np.clip(np.nanmax(np.abs(values)), 0.5, 2.0))
        rows, cols = grid.shape
        fig = new_figure(WIDTH, min(12.0, max(2.8, 0.26 * rows + 1.8)))
        ax = fig.add_subplot()
        coloured = np.where(shown.to_numpy(), values, np.nan)
        muted = np.where(~shown.to_numpy() & np.isfinite(values), 1.0, np.nan)
        ax.imshow(muted, aspect="auto", cmap="Greys", vmin=0, vmax=8, interpolation="nearest")
        im = ax.imshow(coloured, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        for i in range(rows):
            for j in range(cols):
                if np.isfinite(muted[i, j]):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0,
                                           edgecolor="#c8c8c8"))
        ax.set_xticks(
            range(cols),
            [short(c, 26) for c in grid.columns],
            rotation=35 if cols > 5 else 0,
            ha="right" if cols > 5 else "center",
        )
        labels = [f"{short(r, 34)} (n {int(sizes.at[r, 'n_level'])}/{int(sizes.at[r, 'n_rest'])})"
                  for r in grid.index]
        ax.set_yticks(range(rows), labels)
        if rows * cols <= 500:
            for i in range(rows):
                for j in range(cols):
                    v = values[i, j]
                    if not np.isfinite(v):
                        continue
                    strong = shown.iat[i, j]
                    ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=6.5,
                            color="white" if strong and abs(v) > 0.6 * vmax else ("black" if strong else "#777777"),
                            fontweight="bold" if strong else "normal")
        fig.colorbar(im, ax=ax, label="Hedges' g (level vs comparison group)", shrink=0.8)
        absent = sorted({n for n in d["note"].astype(str) for n in n.split("; ") if "absent" in n}) \
            if "note" in d else []
        if absent:  # say it where the grid is read, not only in the table's notes
            fig.text(0.01, 0.005, "\n".join(absent), fontsize=6.5, va="bottom")
        n_shown = int(shown.to_numpy().sum())
        ax.set_title(f"{inst} — effect of persona attributes on dimension scores\n"
                     f"coloured: {n_shown} of {int(np.isfinite(values).sum())} cells (adjusted interval excludes 0); "
                     "grey, hatched: indistinguishable from 0", fontsize=9)
        out.append((inst, fig))
    if not out:
        notes = e["note"].dropna().astype(str) if "note" in e else pd.Series(dtype=str)
        notes = notes[notes != ""].str.replace(r" \(n = .*\)$", "", regex=True)
        why = f" (most cells: {notes.value_counts().index[0]})" if len(notes) else ""
        raise Skip("the effects table has no finite g" + why)
    return out


def stability(run: RunData) -> Figures:
    """Rank-Order stability matrix (context x context) and Ipsative stability per context pair."""
    ro = pair_table(run.metrics, "rank_order")
    ip = pair_table(run.metrics, "ipsative")
    if ro.empty and ip.empty:
        raise Skip(
            "the metrics table has no rank_order / ipsative rows with context pairs "
            "(one context only, or stability not computed)"
        )
    out: Figures = []
    for inst in dict.fromkeys(pd.concat([ro, ip])["instrument"].astype(str)):
        r = ro[ro["instrument"] == inst] if not ro.empty else ro
        p = ip[ip["instrument"] == inst] if not ip.empty else ip
        fig = new_figure(WIDTH, 4.2)
        axes = (
            fig.subplots(1, 2, width_ratios=[1.1, 1]) if not r.empty and not p.empty else [fig.add_subplot()]
        )
        k = 0
        if not r.empty:
            ax = axes[k]
            k += 1
            ctxs = sorted(
                set(r["context_a"].astype(str)) | set(r["context_b"].astype(str)),
                key=lambda c: (context_length(c) or 0, c),
            )
            mat = pd.DataFrame(np.nan, index=ctxs, columns=ctxs)
            for _, row in r.iterrows():
                mat.loc[str(row["context_a"]), str(row["context_b"])] = row["value"]
                mat.loc[str(row["context_b"]), str(row["context_a"])] = row["value"]
            im = ax.imshow(mat.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
            for i in range(len(ctxs)):
                for j in range(len(ctxs)):
                    v = mat.iat[i, j]
                    if np.isfinite(v) and len(ctxs) <= 12:
                        ax.text(
                            j,
                            i,
                            f"{v:.2f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if abs(v) > 0.6 else "black",
                        )
            ax.set_xticks(range(len(ctxs)), [short(c, 14) for c in ctxs], rotation=45, ha="right")
            ax.set_yticks(range(len(ctxs)), [short(c, 14) for c in ctxs])
            ax.set_title(f"{inst} — Rank-Order stability (mean ρ over dimensions)")
            fig.colorbar(im, ax=ax, shrink=0.75, label="Spearman ρ")
        if not p.empty:
            ax = axes[k]
            p = p.assign(_pair=p["context_a"].astype(str) + " ↔ " + p["context_b"].astype(str))
            p = p.sort_values("value")
            y = np.arange(len(p))
            v = p["value"].to_numpy(dtype=float)
            err = np.vstack(
                [
                    np.nan_to_num((v - p["ci_low"].to_numpy(dtype=float)).clip(min=0)),
                    np.nan_to_num((p["ci_high"].to_numpy(dtype=float) - v).clip(min=0)),
                ]
            )
            ax.barh(y, v, color="#4f9d69", xerr=err, capsize=2, height=0.7)
            ax.set_yticks(y, [short(s, 30) for s in p["_pair"]])
            ax.set_xlim(min(0.0, float(np.nanmin(v)) - 0.05), 1)
            ax.axvline(0, color="#888888", lw=0.6)
            ax.set_xlabel("Ipsative stability (mean Spearman ρ over personas)")
            ax.set_title(f"{inst} — Ipsative stability")
        out.append((inst, fig))
    return out


def length_sweep(run: RunData) -> Figures:
    """Stability and distance to neutral against conversation length (when lengths were swept)."""
    lengths = set()
    r = run.responses
    if r is not None and not r.empty and "n_messages" in r:
        lengths = {int(x) for x in r.loc[r["context"].astype(str) != "none", "n_messages"].dropna().unique()}
    if len(lengths) < 2:
        raise Skip(
            "conversation length was not swept "
            f"({'lengths: ' + ', '.join(map(str, sorted(lengths))) if lengths else 'no conversations'})"
        )
    series: dict[str, pd.DataFrame] = {}
    for name in ("rank_order", "ipsative"):
        t = pair_table(run.metrics, name)
        if t.empty:
            continue
        t = t.assign(na=t["context_a"].map(context_length), nb=t["context_b"].map(context_length))
        t = t[(t["na"] == t["nb"]) & t["na"].notna() & (t["na"] > 0)]  # same length, different topics
        if not t.empty:
            series[name] = t.groupby(["instrument", "na"])["value"].mean().reset_index()
    dist = pd.DataFrame()
    if not run.metrics.empty and "metric" in run.metrics:
        dist = run.metrics[run.metrics["metric"] == "distance_to_neutral"].dropna(subset=["context_a"])
    if not dist.empty:
        dist = dist.assign(na=dist["context_a"].map(context_length)).dropna(subset=["na"])
        series["distance_to_neutral"] = dist.groupby(["instrument", "na"])["value"].mean().reset_index()
    if not series:
        raise Skip(
            "lengths were swept but the metrics table has no same-length context pairs "
            "(rank_order / ipsative) nor distance_to_neutral per context"
        )
    out: Figures = []
    insts = dict.fromkeys(str(i) for s in series.values() for i in s["instrument"])
    labels = {
        "rank_order": "Rank-Order stability",
        "ipsative": "Ipsative stability",
        "distance_to_neutral": "distance to neutral profile",
    }
    for inst in insts:
        has_dist = (
            "distance_to_neutral" in series and (series["distance_to_neutral"]["instrument"] == inst).any()
        )
        has_stab = any(
            n != "distance_to_neutral" and (s["instrument"] == inst).any() for n, s in series.items()
        )
        panels = int(has_dist) + int(has_stab)
        fig = new_figure(WIDTH * (0.8 if panels == 2 else 0.55), 3.3)
        axes = list(np.atleast_1d(fig.subplots(1, panels)))
        ax_stab = axes[0] if has_stab else None
        ax_dist = axes[-1] if has_dist else None
        for i, (name, s) in enumerate(series.items()):
            g = s[s["instrument"] == inst].sort_values("na")
            ax = ax_dist if name == "distance_to_neutral" else ax_stab
            if g.empty or ax is None:
                continue
            ax.plot(g["na"], g["value"], marker="o", color=model_color(i), label=labels[name])
            ax.set_xticks(sorted(g["na"].unique()))
        if ax_stab is not None:
            ax_stab.set_title(f"{inst} — stability between topics")
            ax_stab.set_ylabel("mean Spearman ρ")
            ax_stab.legend()
        if ax_dist is not None:
            ax_dist.set_title(f"{inst} — distance to no-persona profile")
            ax_dist.set_ylabel("distance")
        for ax in axes:
            ax.set_xlabel("conversation length (messages)")
        out.append((inst, fig))
    return out
