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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from valuescope.output.report import figures_answers as fa
from valuescope.output.report import figures_geometry as fg
from valuescope.output.report import figures_metrics as fm
from valuescope.output.report import figures_tension as ft
from valuescope.output.report import tables
from valuescope.output.report.data import EFFECT_COLUMNS, METRIC_COLUMNS, RunData
from valuescope.output.report.derive import Skip
from valuescope.output.report.plotting import DPI, png_bytes, style

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


@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    caption: str
    per_run: bool
    build: Callable[..., list]
    optional: bool = False  # left out of the report when it applies to no run (every build raised Skip)


def _text(s: str) -> str:
    """Captions are written as indented blocks; collapse them to one paragraph."""
    return " ".join(s.split())


SPECS = [
    _Spec(
        "inertia",
        "Inertia and steerability",
        _text("""
        Left/top: Inertia Index I(d) = 1 − H(p_d)/log₂K of the distribution of answers (the chosen
        option) p_d pooled over all personas (Lee et al. 2024): 1 means every persona picks the same
        option, 0 means answers are spread uniformly. Right/bottom: Steerability, the Jensen–Shannon
        divergence between the baseline (no persona) and the persona answers, compared like for like
        (only persona answers whose item and option order the baseline also answered; the baseline
        standardised to the same mix): 0 means role-play did not move the answers. Both read the
        answers (hard); the tables give the probability (soft) readings too. Bars are models side by
        side; whiskers are 95% confidence intervals.
        """),
        False,
        fm.inertia_steerability,
    ),
    _Spec(
        "macro",
        "Macro view: answer distributions",
        _text("""
        For each dimension, the mean probability the model puts on each answer option (option 1 =
        lowest scale point, warm colours; highest = cool colours), without a persona (baseline) and
        averaged over all personas. If the two bars of a dimension look alike, personas barely move
        the model's answers on that dimension; a bar dominated by one colour is a model that answers
        one way.
        """),
        True,
        fa.macro,
    ),
    _Spec(
        "micro",
        "Micro view: every answer",
        _text("""
        One cell per (item, persona): the option with the highest probability, in the scale's order
        (not the letter shown, which may be permuted). Rows are items grouped by dimension; columns
        are personas, the first column being the baseline when present. Horizontal stripes mean the
        answer does not depend on the persona; vertical stripes mean a persona shifts all its
        answers (e.g. a yes-sayer). Grey = an answer that could not be read. Shown for the first
        repeat in the base context ("none" when present).
        """),
        True,
        fa.micro,
    ),
    _Spec(
        "effects",
        "Which persona attributes move which values",
        _text("""
        Hedges' g (Cohen's d corrected for small samples) of the dimension score between personas with an
        attribute level and a comparison group: the attribute's reference level where one is meaningful
        (religion: not religious; when no such persona was drawn, the levels are compared with the rest and
        a line under the grid says so), the lowest bin of a numeric attribute (age, income: a trend), the
        other level of a binary attribute (shown once), else all other personas. Coloured (red: the level raises
        the score; blue: lowers it) only where the cell's Benjamini-Hochberg q < 0.05 over the grid
        (Student's t, the model of g's CI) and its interval adjusted for that selection (false coverage
        rate, Benjamini & Yekutieli 2005) excludes 0; every other cell is grey and hatched: its g is not
        distinguishable from noise. Blank: a group has fewer than 5 personas. Each row gives its group
        sizes (n level/comparison). |g| ≈ 0.2 is small, 0.5 medium, 0.8 large. The table below gives every
        cell's g, 95% CI, q and group sizes.
        """),
        True,
        fm.effects_grid,
    ),
    _Spec(
        "pca",
        "Persona value profiles (PCA)",
        _text("""
        Each point is one persona's vector of dimension scores projected onto its first two
        principal components (SVD of the centred persona x dimension matrix). Colours show a persona
        attribute — the one whose levels explain most of PC1 (η²) unless chosen. Separated colour
        clusters mean that attribute organises the model's role-played values; a single blob means
        it does not. Axis labels give the share of variance and the dimensions that load most on
        PC1.
        """),
        True,
        fa.pca_fig,
    ),
    _Spec(
        "convergence",
        "How many personas are enough",
        _text("""
        Variance of each dimension's mean score over n personas, against n (log-log). It falls as
        personas are added; where the curves flatten, more personas add little precision (cf. Lee et
        al. 2024, Fig. 5). From the metrics table's convergence_var rows (resampling personas with
        replacement, seeded).
        """),
        True,
        fa.convergence_fig,
    ),
    _Spec(
        "variance",
        "Where a persona's score varies",
        _text("""
        Per dimension, from the metrics table: the variance a score would have if every answer were
        sampled once at temperature 1 (sampling, exact from the answers' own distributions), the
        variance between repeats of the same persona (a repeat changes only the option order and the
        conversation seed: answers are read as whole distributions), and the variance between
        personas (random-effects estimate). "run share" = (sampling + repeats) / (sampling + repeats
        + personas): at 0.5 or more, run-to-run variance matches or exceeds the spread between
        personas (essay 004's claim).
        """),
        True,
        fa.variance_fig,
    ),
    _Spec(
        "stability",
        "Stability across contexts",
        _text("""
        Left: Rank-Order stability — Spearman correlation over personas of a value's score in two
        contexts, averaged over values (Kovač et al. 2024); 1 = personas keep their order, 0 =
        reshuffled. Right: Ipsative stability — Spearman correlation over values of one persona's
        profile in two contexts, averaged over personas; 1 = each persona keeps its own value
        ranking. Whiskers are 95% CIs where the metrics table gives them.
        """),
        True,
        fm.stability,
    ),
    _Spec(
        "length",
        "Stability against conversation length",
        _text("""
        Left: stability between contexts of the same length on different topics, against the number
        of messages in the simulated conversation before the questionnaire. Falling curves mean
        longer conversations wash out the persona's value profile. Right: distance of the persona
        profiles from the model's own (no-persona) profile.
        """),
        True,
        fm.length_sweep,
    ),
    _Spec(
        "congruence",
        "Motivated reasoning: is the evidence read right when the truth suits the persona?",
        _text("""
        Evidence items (a 2×2 table of counts after Kahan et al. 2017: raw counts mislead, only ratios give
        the right answer; each table asked twice with the correct conclusion flipped). Bars: accuracy
        (probability on the correct conclusion) of personas of each political identity when the correct
        conclusion suits that identity (green) and when it does not (purple), with 95% bootstrap CIs over
        personas; under each identity, the difference with its CI. Left: political topics; right: the neutral
        control (skin cream, fertiliser, …) with balanced placebo labels, where any real model must show no
        difference. Dashed: the model without a persona. Dash et al. (2025) report persona-assigned models
        up to 90% more likely to be right when the truth suits their identity. A model with its own lean (right
        more often when the truth suits one side, persona or not) shows opposite differences on the two sides
        without any motivated reasoning; "all" is the identity × conclusion interaction (the sides' mean
        difference, where that lean cancels; tested by permuting identity labels), and each side's difference
        minus the baseline's is the metric bias_vs_baseline.
        """),
        True,
        ft.congruence,
        optional=True,
    ),
    _Spec(
        "evenhandedness",
        "Evenhandedness: does a persona still see a case on both sides of a value dilemma?",
        _text("""
        Value dilemmas between opposing Schwartz values, each side's case rated separately on the same 1–6
        scale in both orders. Left: per persona, the mean gap between the two sides' ratings (0 = both sides
        rated alike), coloured by political identity; dashed: the model's own gap without a persona. Right:
        collapse = how much wider the persona's gap is than the baseline's on the same dilemmas, and the
        directed collapse towards the value an identity is expected to favour (95% CIs). Bars near 0 mean the
        persona holds the tension as well as the model does on its own.
        """),
        True,
        ft.evenhandedness,
        optional=True,
    ),
    _Spec(
        "narrowing",
        "Narrowing over a conversation",
        _text("""
        Normalised entropy of the answer distribution (0 = all probability on one option, 1 = uniform)
        against the number of messages in the conversation before the question, with a persona and without
        one (baseline), pooled and per dimension, with 95% bootstrap CIs. Falling curves mean the model's
        answers narrow as the dialogue proceeds; a steeper persona curve means the persona narrows them faster.
        """),
        True,
        ft.narrowing,
        optional=True,
    ),
]

# inside the model (hf backend, docs/geometry.md): shown only when a run has recorded states / steering
GEOMETRY_SPECS = [
    _Spec(
        "geometry",
        "Persona space inside the model",
        _text("""
        Left: each persona's residual-stream state (last token of the persona and conversation
        prefix, one layer) on the first two principal components of the persona states; the star is
        the no-persona state. Right: each persona's distance from the no-persona state along the
        assistant axis (baseline state minus the persona mean) against how far its answers moved
        (per-persona steerability). A rising line: personas further from the assistant in the model
        also answer further from it. On a 135M model this shows the machinery, not a finding.
        """),
        True,
        fg.persona_space,
    ),
    _Spec(
        "dose",
        "Steering dose-response",
        _text("""
        Mean persona score of each dimension against the steering strength (add: multiples of the
        contrast vector added to the residual stream while scoring; 0 = the unsteered reference run).
        Flat lines: the values do not follow the axis.
        """),
        True,
        fg.dose,
    ),
]


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
    html = env.get_template("report.html.j2").render(
        title=title or ("valuescope report — " + (", ".join(study_names) or ", ".join(models))),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        models=models,
        runs=[_run_view(r) for r in runs],
        sections=sections,
        headline=tables.headline_tables(runs),
        position=tables.position_table(runs),
        position_warnings=tables.position_warnings(runs),
        comparison=tables.comparison_table(comparison),
        differences=tables.difference_tables(runs),
        pairs=tables.pair_tables(runs),
        dpi=DPI,
        fig_dir=path.stem + FIG_SUFFIX,
    )
    path.write_text(html, encoding="utf-8")
    return path
