"""The report's figures as functions: each returns a matplotlib ``Figure`` for a run (or runs).

>>> run = valuescope.load("demo-smollm2")
>>> fig = valuescope.output.figures.inertia(run)          # several runs: figures.inertia([run_a, run_b])
>>> fig.savefig("inertia.png", dpi=150)

These are the very functions the HTML report draws, one per report section (:data:`NAMES`, the report's
own list, so a section added to the report is a figure here too: ``figures.figure(name, run)``), in the
report's style. Most sections draw one figure per instrument (some per instrument and context): with one
in the run it is returned, with several pass ``instrument=`` (an instrument, or the figure's full label
as the report shows it). A figure the data cannot support (no baseline, one context only, no persona
attributes, ...) raises :class:`valuescope.FigureError` with the report's one-line reason. The figures
are not registered with pyplot; in a notebook a ``Figure`` shows when it is a cell's value (with
matplotlib's inline backend active, e.g. after ``import matplotlib.pyplot``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

from valuescope.core.errors import FigureError
from valuescope.output.api import Run, report_data
from valuescope.output.report.derive import Skip
from valuescope.output.report.plotting import style
from valuescope.output.report.sections import SPECS

__all__ = ["NAMES", "FigureError", "congruence", "convergence", "effects", "evenhandedness", "figure", "inertia",
           "length", "macro", "micro", "narrowing", "pca", "stability", "variance"]

_BY_ID = {s.id: s for s in SPECS}
#: the report's section ids, in the report's order; each is a function here (``figures.inertia``, ...)
NAMES: tuple[str, ...] = tuple(_BY_ID)


def _pick(figs: list[tuple[str, Figure]], instrument: str | None, what: str) -> Figure:
    labels = [label for label, _ in figs]
    if instrument is None:
        if len(figs) == 1:
            return figs[0][1]
        raise FigureError(f"{what}: the run has several figures ({', '.join(labels)}); pass instrument=")
    exact = [fig for label, fig in figs if label == instrument]
    starts = [fig for label, fig in figs if label.split(" ")[0] == instrument]
    for found in (exact, starts):
        if len(found) == 1:
            return found[0]
    if starts:
        raise FigureError(f"{what}: several figures for {instrument!r} ({', '.join(labels)}); pass the full label")
    raise FigureError(f"{what}: no figure for instrument {instrument!r} (the run has: {', '.join(labels)})")


def figure(name: str, runs: Run | Sequence[Run], instrument: str | None = None, **kwargs: Any) -> Figure:
    """The figure of the report section ``name`` (one of :data:`NAMES`) for a run, or for several runs where
    the section compares runs (``inertia``). ``kwargs`` go to the report's drawing function (e.g.
    ``color_by="religion"`` for ``pca``, ``max_personas`` for ``micro``)."""
    spec = _BY_ID.get(name)
    if spec is None:
        raise FigureError(f"unknown figure {name!r}; known: {', '.join(NAMES)}")
    data = report_data(runs)
    if spec.per_run and len(data) != 1:
        raise TypeError(f"the {name} figure is drawn for one run: pass one valuescope.Run")
    with style():
        try:
            figs = spec.build(data[0] if spec.per_run else data, **kwargs)
        except Skip as exc:
            raise FigureError(f"{name}: {exc}") from None
    return _pick(figs, instrument, name)


def _section(name: str) -> Callable[..., Figure]:
    def draw(runs: Run | Sequence[Run], instrument: str | None = None, **kwargs: Any) -> Figure:
        return figure(name, runs, instrument, **kwargs)

    spec = _BY_ID.get(name)
    draw.__name__ = draw.__qualname__ = name
    draw.__doc__ = (f"The report's figure '{spec.title}' as a matplotlib Figure.\n\n{spec.caption}" if spec else
                    f"The report's figure {name!r} (not in this version's report: raises FigureError).")
    return draw


inertia = _section("inertia")
macro = _section("macro")
micro = _section("micro")
effects = _section("effects")
pca = _section("pca")
convergence = _section("convergence")
variance = _section("variance")
stability = _section("stability")
length = _section("length")
congruence = _section("congruence")
evenhandedness = _section("evenhandedness")
narrowing = _section("narrowing")


def __getattr__(name: str) -> Callable[..., Figure]:
    """A report section added after this list was written is still ``figures.<id>``."""
    if name in _BY_ID:
        return _section(name)
    raise AttributeError(f"module 'valuescope.output.figures' has no attribute {name!r}")
