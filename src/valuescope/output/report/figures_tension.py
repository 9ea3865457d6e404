"""Figures of paper 004's probes (issue 17), drawn from the long metrics table only:

* :func:`congruence` -- accuracy on evidence whose correct conclusion suits the persona's identity vs not,
  per identity, with 95% CIs, beside the same on the neutral control (placebo labels) and the baseline;
* :func:`evenhandedness` -- per persona, the mean gap between the ratings of the two sides of a value
  dilemma, against the model's own gap without a persona;
* :func:`narrowing` -- answer entropy against conversation length, persona vs baseline, per dimension.

Each returns ``[(label, Figure), ...]`` for one run or raises :class:`Skip` with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from valuescope.output.report.data import RunData
from valuescope.output.report.derive import Skip
from valuescope.output.report.plotting import WIDTH, model_color, new_figure, short

Figures = list[tuple[str, Figure]]
SIDE_COLORS = {"liberal": "#3b6fb6", "conservative": "#d1603d", "all": "#7a7a7a", "none": "#aaaaaa"}


def _metrics(run: RunData) -> pd.DataFrame:
    if run.metrics is None or run.metrics.empty:
        raise Skip("no metrics table")
    return run.metrics


def _err(d: pd.DataFrame) -> np.ndarray:
    v = d["value"].to_numpy(dtype=float)
    lo = np.nan_to_num((v - d["ci_low"].to_numpy(dtype=float)).clip(min=0))
    hi = np.nan_to_num((d["ci_high"].to_numpy(dtype=float) - v).clip(min=0))
    return np.vstack([lo, hi])


def _fmt_ci(v: float, lo: float, hi: float, pct: bool = True) -> str:
    if pct:
        return f"{100 * v:+.0f} pp [{100 * lo:+.0f}, {100 * hi:+.0f}]" if np.isfinite(lo) else f"{100 * v:+.0f} pp"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{v:.2f}"


def congruence(run: RunData, measure: str = "soft") -> Figures:
    """Accuracy when the truth suits the identity vs not (political topics | neutral control)."""
    m = _metrics(run)
    out: Figures = []
    acc = m[m["metric"].str.match(rf"^(evidence|control)_acc_(congruent|incongruent)_{measure}$")]
    if acc.empty:
        raise Skip("no evidence instrument in this run (metrics evidence_acc_*)")
    for (inst, ctx), g in acc.groupby(["instrument", "context_a"], sort=False):
        fig = new_figure(WIDTH, 3.6)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, prefix, title in ((axes[0], "evidence", "Political topics"),
                                  (axes[1], "control", "Neutral control (placebo identity labels)")):
            sides = [s for s in ("liberal", "conservative", "all") if (g["dimension"] == s).any()]
            x = np.arange(len(sides))
            for j, (kind, color) in enumerate((("congruent", "#4f9d69"), ("incongruent", "#8e6bb8"))):
                d = g[g["metric"] == f"{prefix}_acc_{kind}_{measure}"].set_index("dimension").reindex(sides)
                ax.bar(x - 0.2 + 0.4 * j, d["value"].to_numpy(dtype=float), 0.38, color=color,
                       yerr=_err(d), capsize=3, error_kw={"lw": 0.8},
                       label="truth suits the identity" if kind == "congruent" else "truth does not suit it")
            base = m[(m["metric"] == f"{prefix}_accuracy_{measure}") & (m["instrument"] == inst)
                     & (m["context_a"] == ctx) & (m["dimension"] == "baseline")]
            if len(base):
                ax.axhline(float(base["value"].iloc[0]), color="#333333", ls="--", lw=0.9,
                           label="baseline (no persona)")
            labels = []
            for s in sides:
                d = m[(m["metric"] == f"{prefix}_bias_diff_{measure}") & (m["instrument"] == inst)
                      & (m["context_a"] == ctx) & (m["dimension"] == s)]
                txt = _fmt_ci(*(float(d[c].iloc[0]) for c in ("value", "ci_low", "ci_high"))) if len(d) else ""
                labels.append(f"{s}\n{txt}")
            ax.set_xticks(x, labels)
            ax.set_ylim(0, 1.05)
            ax.set_title(title)
        axes[0].set_ylabel("accuracy (soft: P(correct option))" if measure == "soft" else "accuracy (argmax)")
        axes[0].legend(loc="lower left", fontsize=7)
        out.append((f"{inst} {ctx}", fig))
    return out


def evenhandedness(run: RunData) -> Figures:
    """Mean |rating(x) - rating(y)| per persona (sorted, coloured by identity) vs the baseline's gap."""
    m = _metrics(run)
    per = m[m["metric"] == "evenhandedness_gap_persona"]
    if per.empty:
        raise Skip("no dilemma instrument in this run (metric evenhandedness_gap_persona)")
    out: Figures = []
    for (inst, ctx), g in per.groupby(["instrument", "context_a"], sort=False):
        g = g.assign(side=g["dimension"].str.split(":", n=1).str[0],
                     unit=g["dimension"].str.split(":", n=1).str[1]).sort_values("value")
        fig = new_figure(WIDTH, 3.4)
        ax, ax2 = fig.subplots(1, 2, width_ratios=[3, 1.3])
        ax.bar(np.arange(len(g)), g["value"], color=[SIDE_COLORS.get(s, "#aaaaaa") for s in g["side"]])
        base = m[(m["metric"] == "evenhandedness_gap") & (m["instrument"] == inst) & (m["context_a"] == ctx)]
        b = base[base["dimension"] == "baseline"]
        if len(b):
            ax.axhline(float(b["value"].iloc[0]), color="#333333", ls="--", lw=0.9, label="baseline (no persona)")
            ax.legend(loc="upper left", fontsize=7)
        ax.set_xticks([])
        ax.set_xlabel(f"personas ({len(g)}), sorted; blue = liberal, orange = conservative, grey = no side")
        ax.set_ylabel("mean |gap| between the two sides\n(rating points, 0 = evenhanded)")
        ax.set_title("One-sidedness per persona")
        col = m[(m["metric"].isin(["collapse", "collapse_directed"])) & (m["instrument"] == inst)
                & (m["context_a"] == ctx)]
        if len(col):
            col = col.assign(label=col["metric"].str.replace("collapse_directed", "directed")
                             .str.replace("collapse", "collapse") + "\n" + col["dimension"])
            y = np.arange(len(col))
            ax2.barh(y, col["value"], xerr=_err(col), color=[SIDE_COLORS.get(s, "#aaaaaa") for s in col["dimension"]],
                     capsize=3, error_kw={"lw": 0.8})
            ax2.set_yticks(y, col["label"].tolist(), fontsize=7)
            ax2.axvline(0, color="#333333", lw=0.8)
            ax2.set_title("Collapse vs baseline")
        else:
            ax2.set_axis_off()
        out.append((f"{inst} {ctx}", fig))
    return out


def narrowing(run: RunData) -> Figures:
    """Normalised answer entropy against conversation length (persona vs baseline), per dimension."""
    m = _metrics(run)
    ent = m[m["metric"].isin(["narrowing_entropy_persona", "narrowing_entropy_baseline"])]
    if ent.empty:
        raise Skip("no conversation-length sweep in this run (contexts.n_messages with two or more lengths)")
    out: Figures = []
    for inst, g in ent.groupby("instrument", sort=False):
        dims = [d for d in dict.fromkeys(g["dimension"].astype(str)) if d]
        panels = [""] + dims[:11]
        cols = 4
        rows = int(np.ceil(len(panels) / cols))
        fig = new_figure(WIDTH, 2.2 * rows + 0.4)
        axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True)).ravel()
        for ax, dim in zip(axes, panels, strict=False):
            for j, cond in enumerate(("persona", "baseline")):
                d = g[(g["metric"] == f"narrowing_entropy_{cond}") & (g["dimension"] == dim)].copy()
                if d.empty:
                    continue
                d["n_msg"] = d["context_a"].str.removeprefix("*@").astype(int)
                d = d.sort_values("n_msg")
                ax.errorbar(d["n_msg"], d["value"], yerr=_err(d), color=model_color(j), marker="o", ms=3,
                            lw=1.2, capsize=2, label=cond)
            ax.set_title("all dimensions" if dim == "" else short(dim, 22), fontsize=8)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        axes[0].set_ylabel("entropy H/log2 K")
        axes[0].legend(fontsize=7)
        fig.supxlabel("messages in the conversation before the question", fontsize=8)
        out.append((str(inst), fig))
    return out
