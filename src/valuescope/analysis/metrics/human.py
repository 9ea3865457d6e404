"""Compare persona groups with people: distance to a human profile and the political gap (issue 30).

All functions are pure: they take per-persona dimension scores (the ``scores`` table of
:mod:`valuescope.analysis.scoring`: one row per persona and dimension, column ``score`` on the instrument's
scale), a persona -> group mapping (e.g. ``liberal`` / ``conservative`` from the personas' political identity)
and a human norms table (:func:`load_norms`, format in docs/human_norms.md). valuescope ships no human
numbers: every norm comes from the user's norms file with its own citation.

Definitions (``d`` runs over the dimensions both the model and the norms have):

* ``human_distance(group)`` = sqrt(mean_d (m_g[d] - h_g[d])^2): root mean squared difference between the
  group's mean persona profile ``m_g`` (mean over the group's personas of their dimension scores) and the
  human group's profile ``h_g``, on the instrument's scale (same units as a score). Beside it,
  ``human_distance_baseline`` is the no-persona baseline's profile to the same ``h_g``: is the persona group
  closer to its people than the default assistant?
* ``political_gap_r`` = Pearson correlation over dimensions between the model's gap
  ``G_m[d] = m_b[d] - m_a[d]`` and the human gap ``G_h[d] = h_b[d] - h_a[d]`` (``a``, ``b`` = the two groups,
  e.g. liberal and conservative): does the model's gap point the way the human one does?
* ``political_gap_slope`` = <G_m, G_h> / <G_h, G_h>: the signed projection of the model's gap on the human gap,
  in units of the human gap: 1 = the human gap, > 1 exaggerated, between 0 and 1 flattened, 0 none,
  < 0 reversed (the caricature vs collapse question of Bisbee et al. / paper 004 in /work/shared/papers).

Intervals: 95% percentile bootstrap over personas, resampled within each group (the human norms are taken as
fixed: their sampling error is not in the interval; published MFQ samples are in the thousands).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuescope.core.levels import ALPHA
from valuescope.study.spec import SpecError, read_yaml_file

HUMAN_N_BOOT = 1000  # bootstrap draws of the human-norm comparison when called on its own
LEVEL = 1 - ALPHA


def load_norms(path: str | Path) -> dict[str, Any]:
    """A norms file: ``instrument``, ``scale`` (what the numbers are on), ``groups: {group: {means:
    {dimension: number}, source: text}}``. Every group needs a non-empty ``source``; one-line errors."""
    data = read_yaml_file(path, "norms")
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict) or not data["groups"]:
        raise SpecError(f"{path}: a norms file needs 'groups: {{name: {{means: ..., source: ...}}}}'")
    for key in ("instrument", "scale"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise SpecError(f"{path}: field '{key}' must be a non-empty text")
    for name, g in data["groups"].items():
        where = f"{path}: groups.{name}"
        if not isinstance(g, dict) or not isinstance(g.get("source"), str) or not g["source"].strip():
            raise SpecError(f"{where}: every group needs a 'source' (paper, table or figure, page)")
        means = g.get("means")
        if not isinstance(means, dict) or not means or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in means.values()):
            raise SpecError(f"{where}: 'means' must map dimensions to numbers")
    return data


def group_means(norms: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {name: {str(k): float(v) for k, v in g["means"].items()} for name, g in norms["groups"].items()}


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


def rms_distance(profile: np.ndarray, human: np.ndarray) -> float:
    return float(np.sqrt(np.mean((profile - human) ** 2)))


def _ci(draws: list[float]) -> tuple[float, float]:
    d = np.asarray([x for x in draws if np.isfinite(x)])
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
                "the baseline is one profile: no interval over personas")
        ids = members.get(g, [])
        if not ids:
            continue
        mat = prof.loc[ids, dims].to_numpy(float)
        draws = [rms_distance(np.nanmean(mat[rng.integers(0, len(ids), len(ids))], axis=0), h)
                 for _ in range(n_boot)]
        row("human_distance", g, rms_distance(np.nanmean(mat, axis=0), h), _ci(draws), len(ids))

    a, b = pair
    if a in human and b in human and members.get(a) and members.get(b):
        dims = [d for d in human[a] if d in human[b] and d in prof.columns]
        hg = np.array([human[b][d] - human[a][d] for d in dims])
        ma, mb = prof.loc[members[a], dims].to_numpy(float), prof.loc[members[b], dims].to_numpy(float)
        r, slope = gap_stats(np.nanmean(mb, axis=0) - np.nanmean(ma, axis=0), hg)
        boot = [gap_stats(np.nanmean(mb[rng.integers(0, len(mb), len(mb))], axis=0)
                          - np.nanmean(ma[rng.integers(0, len(ma), len(ma))], axis=0), hg) for _ in range(n_boot)]
        n = len(ma) + len(mb)
        label = f"{b}-{a}"
        row("political_gap_r", label, r, _ci([x[0] for x in boot]), n,
            "" if np.isfinite(r) else "undefined: fewer than 3 dimensions or a constant gap")
        row("political_gap_slope", label, slope, _ci([x[1] for x in boot]), n,
            "" if np.isfinite(slope) else "undefined: the human gap is zero")
    return rows


def human_metrics(scores: pd.DataFrame, norms: Mapping[str, Any], *, attribute: str = "identity",
                  pair: tuple[str, str] = ("liberal", "conservative"), n_boot: int = HUMAN_N_BOOT, seed: int = 0
                  ) -> pd.DataFrame:
    """:func:`human_rows` for every (run_id, model) of a run's ``scores`` table (the norms' instrument, the
    ``dimension`` level where scores have levels), personas grouped by their ``attr_<attribute>`` value;
    rows in the long metrics table's columns (``context_a`` = "all": scores are averaged over contexts)."""
    from valuescope.analysis.metrics._common import ALL, METRIC_COLUMNS

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
