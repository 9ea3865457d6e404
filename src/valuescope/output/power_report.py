"""``valuescope power`` output: the power curve and CI-width plot (PNG), a CSV and a standalone HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.known_truth.power import personas_needed
from valuescope.output.numbers import MISSING, fmt_ci, fmt_num

HEADLINE = ("inertia_soft", "steerability_jsd_soft", "rank_order", "ipsative", "icc")
Z95 = 1.959964


def mc_interval(share: float, reps: int, z: float = Z95) -> tuple[float, float]:
    """Wilson 95% interval of a Monte-Carlo share (power = detections / replications)."""
    if not np.isfinite(share) or reps < 1:
        return float("nan"), float("nan")
    centre = (share + z * z / (2 * reps)) / (1 + z * z / reps)
    half = z * np.sqrt(share * (1 - share) / reps + z * z / (4 * reps * reps)) / (1 + z * z / reps)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def effect_label(metric: str, target: float) -> str:
    """A power column's header: the planted effect and its size (``sex=Female:Harm (d = 0.3)``)."""
    return f"{metric.removeprefix('d ')} (d = {fmt_num(target)})"


def power_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The power table for a terminal or page: one row per number of personas, one column per planted
    effect, each cell ``power [Monte-Carlo 95% interval]`` over the table's replications."""
    eff = table[table["kind"] == "effect"]
    labels = {m: effect_label(m, float(g["target"].iloc[0])) for m, g in eff.groupby("metric", sort=True)}
    rows = []
    for n, g in eff.groupby("n_personas", sort=True):
        cells = []
        for m in labels:
            r = g[g["metric"] == m]
            if r.empty:
                cells.append(MISSING)
                continue
            pw, reps = float(r["power"].iloc[0]), int(r["reps"].iloc[0])
            cells.append(fmt_ci(pw, *mc_interval(pw, reps)))
        rows.append([f"{int(n)}", *cells])
    return ["personas", *labels.values()], rows


def needed_lines(table: pd.DataFrame, power: float) -> list[str]:
    """One line per planted effect: the personas needed for ``power`` (interpolated between the sizes
    simulated), or that it was not reached up to the largest size."""
    eff = table[table["kind"] == "effect"]
    largest = int(eff["n_personas"].max()) if len(eff) else 0
    out = []
    for label, n in personas_needed(table, power).items():
        target = float(eff.loc[eff["metric"] == label, "target"].iloc[0])
        head = effect_label(label, target)
        if n != n:
            out.append(f"{head}: {power:.0%} power not reached with up to {largest} personas")
        else:
            out.append(f"{head}: {power:.0%} power with about {round(n)} personas "
                       "(interpolated between the sizes simulated)")
    return out


def width_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per size and headline metric: the median over dimensions/contexts of the 95% range (CI width)."""
    m = table[(table["kind"] == "metric") & table["metric"].isin(HEADLINE)]
    if m.empty:
        return pd.DataFrame(columns=["n_personas", "metric", "ci_width"])
    return m.groupby(["n_personas", "metric"], sort=True)["ci_width"].median().reset_index()


def power_figure(table: pd.DataFrame, power: float = 0.8) -> bytes:
    from valuescope.output.report.plotting import model_color, new_figure, plain_log_axes, png_bytes, style

    eff = table[table["kind"] == "effect"]
    widths = width_summary(table)
    with style():
        fig = new_figure(9.6, 3.6)
        ax1, ax2 = fig.subplots(1, 2)
        for i, (label, g) in enumerate(eff.groupby("metric", sort=True)):
            g = g.sort_values("n_personas")
            ax1.plot(g["n_personas"], g["power"], marker="o", color=model_color(i),
                     label=f"{label.removeprefix('d ')} (d={g['target'].iloc[0]:g})")
        ax1.axhline(power, color="#888888", lw=0.8, ls="--")
        ax1.set_ylim(0, 1.02)
        ax1.set_xscale("log")
        plain_log_axes(ax1, y=False)
        ax1.set_xlabel("personas")
        ax1.set_ylabel("power (share of replications detecting it)")
        ax1.set_title("Power per planted effect")
        if len(eff):
            ax1.legend(loc="lower right")
        for i, (metric, g) in enumerate(widths.groupby("metric", sort=True)):
            ax2.plot(g["n_personas"], g["ci_width"], marker="o", color=model_color(i + 3), label=metric)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        plain_log_axes(ax2)
        ax2.set_xlabel("personas")
        ax2.set_ylabel("95% CI width (median over dimensions)")
        ax2.set_title("Precision of the headline metrics")
        if len(widths):
            ax2.legend(loc="upper right")
        return png_bytes(fig)


def power_html(table: pd.DataFrame, png: bytes, title: str, settings: str, power: float = 0.8) -> str:
    header, rows = power_rows(table)
    eff = _html_table(header, rows)
    widths = width_summary(table).pivot_table(index="n_personas", columns="metric", values="ci_width")
    wrows = [[f"{int(n)}", *(fmt_num(v) for v in r)] for n, r in zip(widths.index, widths.to_numpy(), strict=True)]
    width_html = _html_table(["personas", *map(str, widths.columns)], wrows)
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in needed_lines(table, power))
    img = base64.b64encode(png).decode()
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(settings)}</p>
<h2>Personas needed for {power:.0%} power</h2><ul>{lines}</ul>
<img alt="power curve and CI widths" src="data:image/png;base64,{img}">
<h2>Power (share of replications with Welch p &lt; alpha and the planted sign) [Monte-Carlo 95% interval]</h2>
{eff}
<h2>95% CI width of the headline metrics (median over dimensions)</h2>
{width_html}
</body></html>
"""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_power(table: pd.DataFrame, out_dir: Path, title: str, settings: str, power: float = 0.8) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png = power_figure(table, power)
    paths = [out_dir / "power.csv", out_dir / "power.png", out_dir / "power.html"]
    table.to_csv(paths[0], index=False)
    paths[1].write_bytes(png)
    paths[2].write_text(power_html(table, png, title, settings, power), encoding="utf-8")
    return paths
