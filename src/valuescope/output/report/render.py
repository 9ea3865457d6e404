"""Runs -> one self-contained HTML file (figures embedded as base64 PNG) plus the PNGs beside it.

Nothing in the page is fetched from the network: no scripts, no web fonts, no external CSS; the
favicon is an empty data URI. Jinja2 autoescaping is on and no value is marked safe, so every
piece of model-written text (persona descriptions, conversations, raw answers, prompts) appears
as text.
"""

from __future__ import annotations

import base64
import re
import warnings
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from valuescope.output.report import tables, tables_compare
from valuescope.output.report.data import EFFECT_COLUMNS, METRIC_COLUMNS, RunData
from valuescope.output.report.derive import Skip
from valuescope.output.report.plotting import DPI, png_bytes, style
from valuescope.output.report.sections import GEOMETRY_SPECS, SPECS
from valuescope.output.report.tables_human import DEFINITIONS, report_human_tables
from valuescope.output.report.tables_tension import report_congruence_tables

TEMPLATES = Path(__file__).parent / "templates"
FIG_SUFFIX = "-figures"  #: a report ``NAME.html`` keeps its PNGs in ``NAME-figures/`` beside it
MAX_NAME = 120


def report_path(out: Path, run_ids: list[str]) -> Path:
    """Where a report goes: ``out`` itself when it names an ``.html`` file, else ``out/<run ids>.html``
    (one file per set of runs, so reports of other runs in the same directory are not overwritten)."""
    out = Path(out)
    if out.suffix.lower() in (".html", ".htm"):
        return out
    name = "_vs_".join(_slug(r) for r in run_ids) or "report"
    if len(name) > MAX_NAME:
        import hashlib

        digest = hashlib.sha256("\n".join(run_ids).encode()).hexdigest()[:10]
        name = f"{name[: MAX_NAME - 11]}-{digest}"
    return out / f"{name}.html"


@dataclass
class FigureOut:
    group: str  # the model when the section has one figure set per run (a sub-heading), else ""
    label: str  # model / instrument the figure is about
    file: str  # path relative to the HTML file
    data_uri: str
    width_px: int


@dataclass
class Section:
    id: str
    title: str
    caption: str
    figures: list[FigureOut] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "model: reason" lines
    tables: list[Any] = field(default_factory=list)  # tables.Table shown below the figures

    @property
    def status(self) -> str:
        return "skipped" if not self.figures else ("partial" if self.skipped else "ok")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _build_sections(runs: list[RunData], html_path: Path, color_by: str | None) -> list[Section]:
    fig_name = html_path.stem + FIG_SUFFIX
    fig_dir = html_path.parent / fig_name
    fig_dir.mkdir(parents=True, exist_ok=True)
    for stale in fig_dir.glob("*.png"):  # this report's figures from an earlier write: none may outlive it
        stale.unlink()
    sections = []
    several = len(runs) > 1
    geometry = [s for s in GEOMETRY_SPECS if any(not getattr(r, s.id).empty for r in runs)]
    for spec in SPECS + geometry:
        sec = Section(spec.id, spec.title, spec.caption)
        errored = False
        targets: list[tuple[str, Any]] = [(r.model, r) for r in runs] if spec.per_run else [("", runs)]
        for who, arg in targets:
            prefix = f"{who}: " if several and who else ""
            with style():
                try:
                    figs = spec.build(arg, color_by=color_by) if spec.id == "pca" else spec.build(arg)
                    pngs = [(label, fig, png_bytes(fig)) for label, fig in figs]
                except Skip as exc:
                    sec.skipped.append(prefix + str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - one broken figure must not lose the whole report
                    msg = f"could not be drawn ({type(exc).__name__}: {exc})"
                    warnings.warn(f"report section {spec.id!r}: {msg}", RuntimeWarning, stacklevel=2)
                    sec.skipped.append(prefix + msg)
                    errored = True
                    continue
            for label, fig, data in pngs:
                name = "-".join(_slug(p) for p in (spec.id, who, label) if p) + ".png"
                (fig_dir / name).write_bytes(data)
                width = int(fig.get_figwidth() * 100)
                sec.figures.append(
                    FigureOut(
                        who if several else "",
                        " · ".join(p for p in (who if several else "", label) if p),
                        f"{fig_name}/{name}",
                        "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
                        width,
                    )
                )
        if spec.id == "effects":
            sec.tables = [t for r in runs for t in tables.effects_tables(r)]
        if spec.optional and not sec.figures and not errored:
            continue
        sections.append(sec)
    return sections


def _messages(msgs: list[Any]) -> list[dict[str, str]]:
    out = []
    for m in msgs:
        if isinstance(m, dict):
            out.append({"role": str(m.get("role", "")), "content": str(m.get("content", ""))})
        else:
            out.append({"role": str(m.role), "content": str(m.content)})
    return out


def _run_view(run: RunData) -> dict[str, Any]:
    personas = list((run.persona_texts or {}).items())[:8]
    convs = [
        {"persona_id": str(p), "context": str(c), "messages": _messages(ms)}
        for p, c, ms in (run.conversations or [])[:4]
    ]
    return {
        "run_id": run.run_id,
        "model": run.model,
        "counts": tables.counts_table(run),
        "settings": tables.settings_json(run.study) if run.study else "",
        "example_prompt": run.example_prompt,
        "personas": personas,
        "n_personas_text": len(run.persona_texts or {}),
        "conversations": convs,
        "raw_answers": tables.raw_answer_rows(run),
        "reduced": run.reduced,
    }


def _normalise(run: RunData) -> RunData:
    """A copy whose metrics / effects frames carry every documented column (NaN where absent), so
    that a producer that leaves out e.g. CIs degrades to bars without whiskers, not to an error."""
    frames = {}
    for name, cols in (("metrics", METRIC_COLUMNS), ("effects", EFFECT_COLUMNS)):
        f = getattr(run, name)
        f = pd.DataFrame() if f is None else f
        if not f.empty:
            f = f.copy()
            for c in cols:
                if c not in f:
                    f[c] = run.run_id if c == "run_id" else run.model if c == "model" else np.nan
        frames[name] = f
    return replace(run, responses=_frame(run.responses), scores=_frame(run.scores), **frames)


def _frame(f: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if f is None else f


def write_report(
    runs: list[RunData], out: Path, *, color_by: str | None = None, title: str | None = None,
    comparison: pd.DataFrame | None = None,
) -> Path:
    """Write one self-contained HTML file and its PNGs beside it; return the HTML path.

    ``out``: a path ending in ``.html`` names the file; anything else is a directory, and the file is
    ``<run ids>.html`` in it (:func:`report_path`). The figures go to ``<name>-figures/`` next to the file;
    figures left there by an earlier write of the same report are removed first.

    ``color_by``: persona attribute for the PCA colours (``religion`` or ``attr_religion``); by default
    the attribute that explains most of PC1. ``comparison``: the cross-run numbers of two runs
    (:func:`valuescope.analysis.metrics.ablation.compare_runs`), shown as a table.
    """
    if not runs:
        raise ValueError("write_report needs at least one run")
    runs = [_normalise(r) for r in runs]
    path = report_path(Path(out), [r.run_id for r in runs])
    path.parent.mkdir(parents=True, exist_ok=True)
    sections = _build_sections(runs, path, color_by)
    models = list(dict.fromkeys(r.model for r in runs))
    study_names = list(dict.fromkeys(str(r.study.get("name", "")) for r in runs if r.study))
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    human_tables, human_notes = report_human_tables(runs)
    html = env.get_template("report.html.j2").render(
        title=title or ("valuescope report — " + (", ".join(study_names) or ", ".join(models))),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        models=models,
        runs=[_run_view(r) for r in runs],
        sections=sections,
        headline=report_congruence_tables(runs) + tables.headline_tables(runs),
        human_tables=human_tables,
        human_notes=human_notes,
        human_definitions=DEFINITIONS,
        position=tables.position_table(runs),
        position_warnings=tables.position_warnings(runs),
        comparison=tables.comparison_table(comparison),
        differences=tables_compare.difference_tables(runs),
        pairs=tables.pair_tables(runs),
        dpi=DPI,
        fig_dir=path.stem + FIG_SUFFIX,
    )
    path.write_text(html, encoding="utf-8")
    return path
