"""``valuescope power`` output: the power curve and CI-width plot (PNG), a CSV and a standalone HTML page."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from valuescope.known_truth.power import personas_needed

HEADLINE = ("inertia_soft", "steerability_jsd_soft", "rank_order", "ipsative", "icc")


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
    need = personas_needed(table, power)
    eff = table[table["kind"] == "effect"].pivot_table(index="n_personas", columns="metric", values="power")
    widths = width_summary(table).pivot_table(index="n_personas", columns="metric", values="ci_width")
    lines = "".join(f"<li>{html.escape(k.removeprefix('d '))}: "
                    f"{'not reached at the sizes simulated' if not np.isfinite(v) else f'about {v:.0f} personas'}"
                    f"</li>" for k, v in need.items())
    img = base64.b64encode(png).decode()
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(settings)}</p>
<h2>Personas needed for {power:.0%} power</h2><ul>{lines}</ul>
<img alt="power curve and CI widths" src="data:image/png;base64,{img}">
<h2>Power (share of replications with Welch p &lt; alpha and the planted sign)</h2>
{eff.to_html(float_format=lambda v: f"{v:.2f}")}
<h2>95% CI width of the headline metrics (median over dimensions)</h2>
{widths.to_html(float_format=lambda v: f"{v:.3f}")}
</body></html>
"""


def write_power(table: pd.DataFrame, out_dir: Path, title: str, settings: str, power: float = 0.8) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    png = power_figure(table, power)
    paths = [out_dir / "power.csv", out_dir / "power.png", out_dir / "power.html"]
    table.to_csv(paths[0], index=False)
    paths[1].write_bytes(png)
    paths[2].write_text(power_html(table, png, title, settings, power), encoding="utf-8")
    return paths
