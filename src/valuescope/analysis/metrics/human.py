"""Compare persona groups with people: distance to a human profile and the political gap (issue 30).

All functions are pure: they take per-persona dimension scores (the ``scores`` table of
:mod:`valuescope.analysis.scoring`: one row per persona and dimension, column ``score`` on the instrument's
scale), a persona -> group mapping (e.g. ``liberal`` / ``conservative`` from the personas' political identity)
and a human norms table (:func:`load_norms`, format in docs/human_norms.md). valuescope ships no human
numbers: every norm comes from the user's norms file with its own citation.

Definitions (``d`` runs over the dimensions both the model and the norms have):

* ``human_distance(group)`` = sqrt(max(D2, 0)), D2 = mean_d [(m_g[d] - h_g[d])^2 - s_g[d]^2 / n_g[d]]: the
  root mean squared difference between the group's population profile and the human group's profile ``h_g``,
  on the instrument's scale (same units as a score). ``m_g[d]`` is the mean over the group's ``n_g[d]``
  personas with a score on d, ``s_g[d]^2`` their unbiased variance. The plug-in sqrt(mean_d (m_g - h_g)^2) is
  biased upward by the mean's sampling noise (E[(m_g - h_g)^2] = delta^2 + var / n), so a group whose
  population profile is its people's would show a positive distance; D2 subtracts that noise and is unbiased
  for mean_d delta_d^2. D2 <= 0 (the profile is within noise of its people) is reported as 0 and the row's
  note says so. Interval: D2 +- t_{n-1} * sqrt(n / (n - 1)) * sd(D2*) (D2* the same statistic on personas
  resampled with replacement, n the group's personas), the bounds mapped through sqrt(max(., 0)): a percentile
  interval of D2* is centred on the plug-in, not on D2 (E*[D2*] = mean_d (m_g - h_g)^2), and a bootstrap's
  spread is that of a sample of n - 1, hence the t quantile and the factor (coverage in docs/human_norms.md).
  Beside it, ``human_distance_baseline`` = sqrt(mean_d (b[d] - h_g[d])^2), the no-persona baseline's one
  profile ``b`` against the same ``h_g``: is the persona group closer to its people than the default
  assistant? The baseline is not a sample of a population, so it has no between-persona noise to subtract and
  no interval; its own answer noise (the randomness of its answers, averaged over the dimension's items,
  contexts and repeats) has no replicate profile to be estimated from and is not subtracted, so where the
  answers are random it is biased upward by that noise's variance (none when its answers are deterministic).
* ``political_gap_r`` = Pearson correlation over dimensions between the model's gap
  ``G_m[d] = m_b[d] - m_a[d]`` and the human gap ``G_h[d] = h_b[d] - h_a[d]`` (``a``, ``b`` = the two groups,
  e.g. liberal and conservative): does the model's gap point the way the human one does?
* ``political_gap_slope`` = <G_m, G_h> / <G_h, G_h>: the signed projection of the model's gap on the human gap,
  in units of the human gap: 1 = the human gap, > 1 exaggerated, between 0 and 1 flattened, 0 none,
  < 0 reversed (the caricature vs collapse question of Bisbee et al. / paper 004 in /work/shared/papers).

Intervals: bootstrap over personas, resampled within each group (95%; percentile intervals for the gap,
the interval above for the distance) (the human norms are taken as
fixed: their sampling error is not in the interval; published MFQ samples are in the thousands).

A run's metrics table holds these rows (family ``human``, :func:`human_table`) when its study declares the
comparison (``human: {norms: FILE, attribute: identity}``) or its synthetic model was built from a norms file
(``study.spec.human_norms``); a study that declares it without a norms file gets one row saying so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from valuescope.analysis.metrics._common import ALL, METRIC_COLUMNS
from valuescope.analysis.metrics.registry import MetricInputs, register
from valuescope.core.levels import ALPHA
from valuescope.study.files import SpecError
from valuescope.study.norms import group_means, load_norms

__all__ = ["METRICS", "distance_stats", "gap_stats", "group_means", "human_metrics", "human_rows", "human_table",
           "load_norms", "rms_distance"]

#: the rows this family writes (the report shows them in their own section, not in the headline tables)
METRICS = ("human_distance", "human_distance_baseline", "political_gap_r", "political_gap_slope")
HUMAN_N_BOOT = 1000  # bootstrap draws of the human-norm comparison when called on its own
LEVEL = 1 - ALPHA


def _profiles(scores: pd.DataFrame) -> pd.DataFrame:
    """persona x dimension matrix of scores (mean over contexts/repeats)."""
    return scores.pivot_table(index="persona_id", columns="dimension", values="score", aggfunc="mean")


def gap_stats(model_gap: np.ndarray, human_gap: np.ndarray) -> tuple[float, float]:
    """(r, slope) of a model gap vector against a human one (formulas in the module docstring)."""
    hh = float(human_gap @ human_gap)
    slope = float(model_gap @ human_gap) / hh if hh > 0 else float("nan")
    if len(human_gap) < 3 or np.std(model_gap) == 0 or np.std(human_gap) == 0:
        r = float("nan")
    else:
        r = float(np.corrcoef(model_gap, human_gap)[0, 1])
    return r, slope


def _gap_draws(model_gaps: np.ndarray, human_gap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gap_stats` of every row of ``model_gaps`` (bootstrap draws x dimensions) at once."""
    hh = float(human_gap @ human_gap)
    slope = model_gaps @ human_gap / hh if hh > 0 else np.full(len(model_gaps), np.nan)
    if len(human_gap) < 3 or np.std(human_gap) == 0:
        return np.full(len(model_gaps), np.nan), slope
    m = model_gaps - model_gaps.mean(axis=1, keepdims=True)
    h = human_gap - human_gap.mean()
    with np.errstate(all="ignore"):
        r = m @ h / np.sqrt((m * m).sum(axis=1) * float(h @ h))
    return r, slope


def _boot_means(mat: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, dimensions): the group's mean profile over personas resampled with replacement."""
    return np.nanmean(mat[rng.integers(0, len(mat), (n_boot, len(mat)))], axis=1)


def rms_distance(profile: np.ndarray, human: np.ndarray) -> float:
    """The plug-in distance of one profile (the baseline's): sqrt(mean_d (profile - human)^2)."""
    return float(np.sqrt(np.mean((profile - human) ** 2)))


def _d2(diff: np.ndarray) -> np.ndarray:
    """D2 of the module docstring over the persona axis (-2) of ``diff`` (personas x dimensions: score minus
    norm; NaN = no score): NaN where a dimension has fewer than 2 personas with a score."""
    n = diff.shape[-2]
    if n >= 2 and not np.isnan(diff).any():  # every persona scored on every dimension (the usual case, faster)
        m = diff.mean(axis=-2)
        return np.mean(m * m - diff.var(axis=-2, ddof=1) / n, axis=-1)
    k = np.sum(np.isfinite(diff), axis=-2)
    with np.errstate(all="ignore"):
        m = np.nansum(diff, axis=-2) / k
        var = np.nansum((diff - np.expand_dims(m, -2)) ** 2, axis=-2) / (k - 1)
        d2 = np.mean(m * m - var / k, axis=-1)
    return np.where(np.all(k >= 2, axis=-1), d2, np.nan)


def distance_stats(mat: np.ndarray, human: np.ndarray, rng: np.random.Generator, n_boot: int
                   ) -> tuple[float, float, float, float]:
    """(human_distance, ci_low, ci_high, D2) of a group's personas x dimensions score matrix ``mat`` (NaN = no
    score) against the human profile (definitions and interval in the module docstring)."""
    diff = mat - human
    n = len(mat)
    d2 = float(_d2(diff))
    draws = _d2(diff[rng.integers(0, n, (n_boot, n))])
    draws = draws[np.isfinite(draws)]
    if not np.isfinite(d2):
        return float("nan"), float("nan"), float("nan"), d2
    if len(draws) < 10:
        return math.sqrt(max(d2, 0.0)), float("nan"), float("nan"), d2
    half = float(stats.t.ppf(1 - (1 - LEVEL) / 2, n - 1)) * math.sqrt(n / (n - 1)) * float(np.std(draws, ddof=1))
    return math.sqrt(max(d2, 0.0)), math.sqrt(max(d2 - half, 0.0)), math.sqrt(max(d2 + half, 0.0)), d2


def _ci(draws: np.ndarray) -> tuple[float, float]:
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 10:
        return float("nan"), float("nan")
    a = (1 - LEVEL) / 2
    return float(np.quantile(d, a)), float(np.quantile(d, 1 - a))


def human_rows(scores: pd.DataFrame, groups: Mapping[str, str], norms: Mapping[str, Any], *, pair: tuple[str, str]
               = ("liberal", "conservative"), baseline_id: str = "baseline", n_boot: int = HUMAN_N_BOOT, seed: int = 0
               ) -> list[dict[str, Any]]:
    """Rows ``{metric, dimension, value, ci_low, ci_high, n, note}``: ``human_distance`` and
    ``human_distance_baseline`` per human group the personas have, ``human_distance_baseline`` to ``all``
    when the norms have that group, and ``political_gap_r`` / ``political_gap_slope`` for ``pair`` (a, b):
    the gap is b - a. ``scores``: one instrument's per-persona scores; ``groups``: persona_id -> group."""
    human = group_means(norms)
    prof = _profiles(scores)
    rows: list[dict[str, Any]] = []
    base = prof.loc[baseline_id] if baseline_id in prof.index else None
    members = {g: [p for p in prof.index if groups.get(str(p)) == g] for g in human}
    rng = np.random.default_rng(seed)

    def row(metric: str, dim: str, value: float, ci: tuple[float, float], n: int, note: str = "") -> None:
        rows.append({"metric": metric, "dimension": dim, "value": value, "ci_low": ci[0], "ci_high": ci[1],
                     "n": n, "note": note})

    for g, hum in human.items():
        dims = [d for d in hum if d in prof.columns]
        if not dims:
            continue
        h = np.array([hum[d] for d in dims])
        if base is not None and not base[dims].isna().any():
            row("human_distance_baseline", g, rms_distance(base[dims].to_numpy(float), h), (np.nan, np.nan), 1,
                "the baseline is one profile: no interval over personas, its answer noise not subtracted")
        ids = members.get(g, [])
        if not ids:
            continue
        value, low, high, d2 = distance_stats(prof.loc[ids, dims].to_numpy(float), h, rng, n_boot)
        note = ("undefined: fewer than 2 personas with a score on a dimension (no noise estimate)"
                if not np.isfinite(d2) else
                f"the noise-corrected squared distance is {d2:.3g} <= 0: shown as 0 (within sampling noise of "
                f"its people)" if d2 <= 0 else "")
        row("human_distance", g, value, (low, high), len(ids), note)

    a, b = pair
    if a in human and b in human and members.get(a) and members.get(b):
        dims = [d for d in human[a] if d in human[b] and d in prof.columns]
        hg = np.array([human[b][d] - human[a][d] for d in dims])
        ma, mb = prof.loc[members[a], dims].to_numpy(float), prof.loc[members[b], dims].to_numpy(float)
        r, slope = gap_stats(np.nanmean(mb, axis=0) - np.nanmean(ma, axis=0), hg)
        boot_b = _boot_means(mb, rng, n_boot)
        boot_r, boot_slope = _gap_draws(boot_b - _boot_means(ma, rng, n_boot), hg)
        n = len(ma) + len(mb)
        label = f"{b}-{a}"
        row("political_gap_r", label, r, _ci(boot_r), n,
            "" if np.isfinite(r) else "undefined: fewer than 3 dimensions or a constant gap")
        row("political_gap_slope", label, slope, _ci(boot_slope), n,
            "" if np.isfinite(slope) else "undefined: the human gap is zero")
    return rows


def human_metrics(scores: pd.DataFrame, norms: Mapping[str, Any], *, attribute: str = "identity",
                  pair: tuple[str, str] = ("liberal", "conservative"), n_boot: int = HUMAN_N_BOOT, seed: int = 0
                  ) -> pd.DataFrame:
    """:func:`human_rows` for every (run_id, model) of a run's ``scores`` table (the norms' instrument, the
    ``dimension`` level where scores have levels), personas grouped by their ``attr_<attribute>`` value;
    rows in the long metrics table's columns (``context_a`` = "all": scores are averaged over contexts)."""
    col = f"attr_{attribute}"
    s = scores[scores["instrument"] == norms["instrument"]]
    if "level" in s.columns:
        s = s[s["level"] == "dimension"]
    if col not in s.columns:
        raise SpecError(f"scores: no persona attribute '{attribute}' to group personas by")
    out = []
    for (run_id, model), g in s.groupby(["run_id", "model"], sort=True):
        groups = {str(p): str(v) for p, v in g[["persona_id", col]].dropna().drop_duplicates().to_numpy()}
        for r in human_rows(g, groups, norms, pair=pair, n_boot=n_boot, seed=seed):
            out.append({"run_id": run_id, "model": model, "instrument": norms["instrument"], "context_a": ALL,
                        "context_b": "", **r})
    return pd.DataFrame(out, columns=METRIC_COLUMNS)


def _note_row(inputs: MetricInputs, instrument: str, note: str) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": inputs.run_id, "model": inputs.model, "instrument": instrument,
                          "metric": "political_gap_slope", "dimension": "", "context_a": ALL, "context_b": "",
                          "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0, "note": note}],
                        columns=METRIC_COLUMNS)


@register("human", 45)
def human_table(inputs: MetricInputs) -> pd.DataFrame:
    """The human comparison of a run whose study declares one (``human:``) or whose synthetic model was built
    from a norms file (``study.spec.human_norms``): :func:`human_metrics` rows, or one row saying why there are
    none (no norms file, an unreadable one, no persona attribute to group by)."""
    human = inputs.human
    if human is None or human.norms is None:
        return _note_row(inputs, "", inputs.human_note) if inputs.human_note else pd.DataFrame(columns=METRIC_COLUMNS)
    try:
        norms = load_norms(human.norms)
    except SpecError as exc:
        return _note_row(inputs, "", f"human comparison: {exc}")
    scores = inputs.scores
    instrument = str(norms["instrument"])
    if scores.empty or instrument not in set(scores["instrument"]):
        return _note_row(inputs, instrument, f"human comparison: the run holds no {instrument} scores")
    if f"attr_{human.attribute}" not in scores.columns:
        return _note_row(inputs, instrument, f"human comparison: no persona has the attribute "
                                             f"'{human.attribute}' to group personas by")
    return human_metrics(scores, norms, attribute=human.attribute, pair=human.pair, n_boot=inputs.n_boot,
                         seed=inputs.seed)
