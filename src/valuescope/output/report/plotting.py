"""Shared matplotlib set-up for the report: one style, palettes, PNG encoding."""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager

import matplotlib
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

# Figures are plain ``Figure`` objects (never pyplot's): no GUI backend is needed to draw or save them, and
# importing valuescope leaves the backend of a notebook or a script alone.

DPI = 150  # saved resolution; shown at 100 px per inch (sharp on high-density screens)
WIDTH = 9.6  # inches: ~960 px in the page, fits a laptop screen
INVALID = "#d9d9d9"
MODEL_COLORS = ["#3b6fb6", "#d1603d", "#4f9d69", "#8e6bb8", "#c49a2c", "#5aa9c6", "#b8577e", "#7a7a7a"]

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.edgecolor": "#555555",
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "text.parse_math": False,  # model-written names must never be read as TeX
}


@contextmanager
def style():
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, height: float) -> Figure:
    """A figure not registered with pyplot (no global state, no leaks)."""
    return Figure(figsize=(width, height), layout="constrained")


def option_colors(k: int) -> list:
    """k colours from low (warm) to high (cool) answer options."""
    cmap = matplotlib.colormaps["RdYlBu"]
    if k == 1:
        return [cmap(0.5)]
    return [cmap(0.05 + 0.9 * i / (k - 1)) for i in range(k)]


def option_cmap(k: int) -> ListedColormap:
    """Discrete map: index 0 = invalid (grey), 1..k = options."""
    return ListedColormap([INVALID, *option_colors(k)])


def model_color(i: int) -> str:
    return MODEL_COLORS[i % len(MODEL_COLORS)]


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG. Where its constrained layout collapses (e.g. a legend of 26 options), the figure is
    drawn without it on a canvas grown to fit everything, instead of printing matplotlib's warning."""
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buf, format="png", dpi=DPI)
    collapsed = [w for w in caught if "constrained_layout not applied" in str(w.message)]
    for w in caught:
        if w not in collapsed:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if collapsed:
        fig.set_layout_engine("none")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def plain_log_axes(ax, x: bool = True, y: bool = True) -> None:
    """Log axes with plain tick labels (the default ones are TeX, which the style switches off)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{v:g}")
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(fmt)
            axis.set_minor_formatter(NullFormatter())


def top_legend(fig: Figure, ax, n: int) -> None:
    """One legend above all panels, entries side by side."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncol=min(max(n, 1), 6))


def short(text: object, n: int = 22) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"
