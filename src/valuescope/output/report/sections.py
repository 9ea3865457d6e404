"""The report's sections, in the order the page shows them: each a title, a caption and the figure function that
draws it (``(RunData) -> [(label, Figure)]``, raising ``derive.Skip`` when it does not apply). A new figure is
one :class:`SectionSpec` here; ``render.py`` draws and lays out whatever this list holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from valuescope.output.report import figures_answers as fa
from valuescope.output.report import figures_geometry as fg
from valuescope.output.report import figures_metrics as fm
from valuescope.output.report import figures_tension as ft


@dataclass(frozen=True)
class SectionSpec:
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
    SectionSpec(
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
