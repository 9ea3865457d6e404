"""Report figures of persona space (docs/geometry.md): personas on PC1 x PC2 of their recorded
residual-stream states, their position on the assistant axis against how far their answers moved, and
value scores against steering strength."""

from __future__ import annotations

import numpy as np
import pandas as pd

from valuescope.output.report.data import RunData
from valuescope.output.report.derive import Skip
from valuescope.output.report.plotting import MODEL_COLORS, WIDTH, new_figure, short


def _color_column(pos: pd.DataFrame) -> str | None:
    """The persona attribute to colour by: the attr_* column with 2..8 levels and most levels, else
    gender / population when they vary."""
    cands = [c for c in pos.columns if c.startswith("attr_")] + [c for c in ("gender", "population") if c in pos]
    best, best_n = None, 1
    for c in cands:
        n = pos.loc[pos["condition"] == "persona", c].nunique()
        if 2 <= n <= 8 and n > best_n:
            best, best_n = c, n
    return best


def _layer(pos: pd.DataFrame, study: dict) -> int:
    steer = (study or {}).get("steer") or {}
    layers = sorted(pos["layer"].unique())
    if steer.get("layer") in layers:
        return int(steer["layer"])
    return int(layers[len(layers) // 2])


def persona_space(run: RunData) -> list:
    pos = run.geometry
    if pos is None or pos.empty:
        raise Skip("no residual-stream states recorded (geometry: needs the hf backend)")
    ctx = "none" if "none" in set(pos["context"]) else sorted(pos["context"].unique())[0]
    layer = _layer(pos[pos["context"] == ctx], run.study)
    p = pos[(pos["context"] == ctx) & (pos["layer"] == layer)]
    pers, base = p[p["condition"] == "persona"], p[p["condition"] == "baseline"]
    fig = new_figure(WIDTH, 3.8)
    ax1, ax2 = fig.subplots(1, 2)
    col = _color_column(p)
    if col is None:
        ax1.scatter(pers["pc1"], pers["pc2"], s=18, color=MODEL_COLORS[0], label="persona")
    else:
        for i, (level, g) in enumerate(pers.groupby(pers[col].astype(str), sort=True)):
            ax1.scatter(g["pc1"], g["pc2"], s=18, color=MODEL_COLORS[i % len(MODEL_COLORS)], label=short(level))
    ax1.scatter(base["pc1"], base["pc2"], s=90, marker="*", color="black", label="no persona")
    ax1.set_xlabel("PC1 (oriented toward the no-persona state)")
    ax1.set_ylabel("PC2")
    ax1.set_title(f"Persona states, layer {layer}, context {ctx}" + (f" — colour: {col}" if col else ""))
    ax1.legend(loc="best", fontsize=7)
    ycol = "steerability" if "steerability" in p and p["steerability"].notna().any() else (
        "shift" if "shift" in p and p["shift"].notna().any() else None)
    if ycol is None:
        ax2.text(0.5, 0.5, "no answers to compare", ha="center", va="center", transform=ax2.transAxes)
    else:
        ax2.scatter(pers["axis_position"], pers[ycol], s=18, color=MODEL_COLORS[1])
        ok = pers[["axis_position", ycol]].dropna()
        if len(ok) >= 3 and ok["axis_position"].std() > 0:
            b1, b0 = np.polyfit(ok["axis_position"], ok[ycol], 1)
            xs = np.linspace(ok["axis_position"].min(), ok["axis_position"].max(), 2)
            ax2.plot(xs, b0 + b1 * xs, color="#555555", lw=1)
        ax2.set_ylabel("steerability (mean JSD to baseline, bits)" if ycol == "steerability"
                       else "value shift (distance to baseline profile)")
    ax2.set_xlabel("distance from the no-persona state along the assistant axis")
    ax2.set_title("Axis position against value shift")
    return [(f"layer {layer}", fig)]


def dose(run: RunData) -> list:
    d = run.dose
    if d is None or d.empty or d["add"].nunique() < 2:
        raise Skip("fewer than two steering strengths (add) with the same reference run")
    figs = []
    for inst, g in d.groupby("instrument", sort=True):
        fig = new_figure(WIDTH, 3.6)
        ax = fig.subplots()
        for i, (dim, gd) in enumerate(g.groupby("dimension", sort=True)):
            gd = gd[gd["cap"].isna()].sort_values("add") if gd["cap"].isna().sum() >= 2 else gd.sort_values("add")
            ax.plot(gd["add"], gd["score"], marker="o", ms=3, color=MODEL_COLORS[i % len(MODEL_COLORS)],
                    label=short(dim, 16))
        ax.set_xlabel("add: multiple of the contrast vector (0 = unsteered)")
        ax.set_ylabel("mean persona score")
        ax.set_title(f"{inst}: value scores against steering strength")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
        figs.append((str(inst), fig))
    return figs
