"""The report's figures as functions: each returns a matplotlib ``Figure`` for a run (or runs).

>>> run = valuescope.load("demo-smollm2")
>>> fig = valuescope.figures.inertia(run)          # several runs: figures.inertia([run_a, run_b])
>>> fig.savefig("inertia.png", dpi=150)

These are the functions the HTML report draws (``valuescope.report.figures_*``), in the report's
style. Most figures are drawn per instrument: with one instrument in the run it is chosen, with
several pass ``instrument=``. A figure the data cannot support (no baseline, one context only, no
persona attributes, ...) raises :class:`valuescope.FigureError` with the report's one-line reason.
The figures are not registered with pyplot; in a notebook a ``Figure`` shows when it is a cell's
value (with matplotlib's inline backend active, e.g. after ``import matplotlib.pyplot``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

from valuescope.api import Run, report_data
from valuescope.errors import FigureError
from valuescope.report import figures_answers as fa
from valuescope.report import figures_metrics as fm
from valuescope.report.derive import Skip
from valuescope.report.plotting import style

__all__ = ["FigureError", "NAMES", "convergence", "effects", "figure", "inertia", "length", "macro", "micro", "pca",
           "stability", "variance"]


def _pick(figs: list[tuple[str, Figure]], instrument: str | None, what: str) -> Figure:
    labels = [label for label, _ in figs]
    if instrument is not None:
        for label, fig in figs:
            if label == instrument:
                return fig
        raise FigureError(f"{what}: no figure for instrument {instrument!r} (the run has: {', '.join(labels)})")
    if len(figs) == 1:
        return figs[0][1]
    raise FigureError(f"{what}: the run has several instruments ({', '.join(labels)}); pass instrument=")


def _draw(what: str, build: Callable[..., list[tuple[str, Figure]]], arg: Any, instrument: str | None,
          **kwargs: Any) -> Figure:
    with style():
        try:
            figs = build(arg, **kwargs)
        except Skip as exc:
            raise FigureError(f"{what}: {exc}") from None
    return _pick(figs, instrument, what)


def _one(run: Run) -> Any:
    data = report_data(run)
    if len(data) != 1:
        raise TypeError("this figure is drawn for one run: pass one valuescope.Run")
    return data[0]


def inertia(runs: Run | Sequence[Run], instrument: str | None = None) -> Figure:
    """Inertia Index and Steerability (JSD) per dimension with 95% CIs; one bar per run (model)."""
    return _draw("inertia", fm.inertia_steerability, report_data(runs), instrument)


def macro(run: Run, instrument: str | None = None) -> Figure:
    """Mean answer distribution per dimension: baseline against the personas, stacked bars."""
    return _draw("macro", fa.macro, _one(run), instrument)


def micro(run: Run, instrument: str | None = None, max_personas: int = 120) -> Figure:
    """Item x persona heatmap of the chosen option (scale order); grey = unreadable."""
    return _draw("micro", fa.micro, _one(run), instrument, max_personas=max_personas)


def effects(run: Run, instrument: str | None = None) -> Figure:
    """The Cohen's d grid: persona attribute levels x dimensions, significant cells marked."""
    return _draw("effects", fm.effects_grid, _one(run), instrument)


def pca(run: Run, instrument: str | None = None, color_by: str | None = None) -> Figure:
    """Persona value profiles on their first two principal components, coloured by an attribute."""
    return _draw("pca", fa.pca_fig, _one(run), instrument, color_by=color_by)


def convergence(run: Run, instrument: str | None = None) -> Figure:
    """Variance of each dimension's mean score against the number of personas (log-log)."""
    return _draw("convergence", fa.convergence_fig, _one(run), instrument)


def variance(run: Run, instrument: str | None = None) -> Figure:
    """Within-persona (across repeats) against between-persona variance per dimension."""
    return _draw("variance", fa.variance_fig, _one(run), instrument)


def stability(run: Run, instrument: str | None = None) -> Figure:
    """Rank-Order and Ipsative stability between contexts (needs two or more contexts)."""
    return _draw("stability", fm.stability, _one(run), instrument)


def length(run: Run, instrument: str | None = None) -> Figure:
    """Stability and distance to the no-persona profile against conversation length (a length sweep)."""
    return _draw("length", fm.length_sweep, _one(run), instrument)


#: the report's section ids, each the name of a function here
NAMES = ("inertia", "macro", "micro", "effects", "pca", "convergence", "variance", "stability", "length")


def figure(name: str, runs: Run | Sequence[Run], **kwargs: Any) -> Figure:
    """The figure of the report section ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise FigureError(f"unknown figure {name!r}; known: {', '.join(NAMES)}")
    return globals()[name](runs, **kwargs)
