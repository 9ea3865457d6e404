"""Shared pieces of the metrics package: the long-table contract, ranks, correlations, seeded RNGs.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from valuescope.core.levels import ALPHA
from valuescope.core.units import unit_ids as unit_ids  # (defined in core: the metrics read it from here)

#: Columns of the long "metrics" table, in order (the contract read by the CLI, export and report).
METRIC_COLUMNS = [
    "run_id", "model", "instrument", "metric", "dimension", "context_a", "context_b",
    "value", "ci_low", "ci_high", "n", "note",
]
#: One computation unit: several runs / models / instruments concatenated are handled group by group.
GROUP_KEYS = ["run_id", "model", "instrument"]
#: ``context_a``/``context_b`` value meaning "aggregated over all contexts / context pairs".
ALL = "all"
NO_CONTEXT = "none"

_P_COL = re.compile(r"^p_(\d+)$")


def prob_columns(df: pd.DataFrame) -> list[str]:
    """The ``p_1 .. p_K`` columns of a responses table, in scale order."""
    cols = [c for c in df.columns if _P_COL.match(str(c))]
    return sorted(cols, key=lambda c: int(_P_COL.match(c).group(1)))  # type: ignore[union-attr]


def group_rng(seed: int, *keys: Any) -> np.random.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``keys``.

    Each (run, model, instrument, ...) group draws from its own stream, so a group's numbers do not
    depend on which other groups are in the table (recomputing from an export gives equal values).
    """
    text = "\x1f".join(str(k) for k in keys)
    return np.random.default_rng([int(seed), zlib.crc32(text.encode("utf-8"))])


def bootstrap_index(rng: np.random.Generator, n_units: int, n_boot: int) -> np.ndarray:
    """``(n_boot, n_units)`` indices drawn with replacement (resampling units, e.g. personas)."""
    return rng.integers(0, n_units, size=(n_boot, n_units))


def bootstrap_weights(idx: np.ndarray, n_units: int) -> np.ndarray:
    """How many times each unit appears in each bootstrap sample: ``(n_boot, n_units)`` counts."""
    n_boot = idx.shape[0]
    w = np.zeros((n_boot, n_units))
    np.add.at(w, (np.repeat(np.arange(n_boot), idx.shape[1]), idx.ravel()), 1.0)
    return w


def percentile_ci(boot: np.ndarray, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of bootstrap replicates (NaN replicates are ignored)."""
    boot = np.asarray(boot, dtype=float)
    if boot.shape[0] == 0:
        nan = np.full(boot.shape[1:], np.nan)
        return nan, nan
    q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    if not np.isnan(boot).any():  # the same numbers as nanpercentile, without its per-column Python loop
        lo, hi = np.percentile(boot, q, axis=0)
        return lo, hi
    with np.errstate(all="ignore"), _quiet():
        lo, hi = np.nanpercentile(boot, q, axis=0)
    return lo, hi


class _quiet:
    """Silence numpy's all-NaN warnings inside a block (NaN is the defined answer there)."""

    def __enter__(self) -> None:
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


quiet = _quiet


def average_ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share the mean rank) along the last axis; NaN stays NaN.

    Vectorised over all leading axes, so many bootstrap replicates are ranked at once.
    """
    a = np.asarray(a, dtype=float)
    n = a.shape[-1]
    if n == 0:
        return a.copy()
    order = np.argsort(a, axis=-1, kind="stable")  # NaN sorts last
    s = np.take_along_axis(a, order, axis=-1)
    start = np.ones(s.shape, dtype=bool)
    start[..., 1:] = s[..., 1:] != s[..., :-1]
    pos = np.broadcast_to(np.arange(n), s.shape)
    first = np.maximum.accumulate(np.where(start, pos, 0), axis=-1)
    end = np.ones(s.shape, dtype=bool)
    end[..., :-1] = start[..., 1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, pos, n - 1), -1), axis=-1), -1)
    r_sorted = (first + last) / 2.0 + 1.0
    r_sorted[np.isnan(s)] = np.nan
    ranks = np.empty_like(r_sorted)
    np.put_along_axis(ranks, order, r_sorted, axis=-1)
    return ranks


def pearson_last(x: np.ndarray, y: np.ndarray, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r along the last axis over pairwise-complete entries; returns ``(r, n)``.

    r is NaN where fewer than ``min_n`` complete pairs exist or either side has zero variance.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = np.broadcast_arrays(x, y)
    ok = ~(np.isnan(x) | np.isnan(y))
    n = ok.sum(axis=-1)
    with np.errstate(all="ignore"), _quiet():
        xm = np.where(ok, x, np.nan)
        ym = np.where(ok, y, np.nan)
        dx = xm - np.nanmean(xm, axis=-1, keepdims=True)
        dy = ym - np.nanmean(ym, axis=-1, keepdims=True)
        sxy = np.nansum(dx * dy, axis=-1)
        sxx = np.nansum(dx * dx, axis=-1)
        syy = np.nansum(dy * dy, axis=-1)
        den = np.sqrt(sxx * syy)
        scale = np.sqrt(np.nansum(xm * xm, axis=-1) * np.nansum(ym * ym, axis=-1)) + 1.0
        r = np.where((n >= min_n) & (den > 1e-12 * scale), sxy / den, np.nan)
    return np.clip(r, -1.0, 1.0), n


def spearman_last(x: np.ndarray, y: np.ndarray, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho along the last axis: Pearson r of average ranks over pairwise-complete entries."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    x, y = np.broadcast_arrays(x, y)
    bad = np.isnan(x) | np.isnan(y)
    rx = average_ranks(np.where(bad, np.nan, x))
    ry = average_ranks(np.where(bad, np.nan, y))
    return pearson_last(rx, ry, min_n=min_n)


def metric_row(
    group: Iterable[Any], metric: str, *, dimension: str = "", context_a: str = "", context_b: str = "",
    value: float = np.nan, ci_low: float = np.nan, ci_high: float = np.nan, n: int = 0, note: str = "",
) -> dict[str, Any]:
    """One row of the long metrics table (``group`` = run_id, model, instrument)."""
    run_id, model, instrument = group
    return {
        "run_id": run_id, "model": model, "instrument": instrument, "metric": metric,
        "dimension": "" if dimension is None else str(dimension),
        "context_a": context_a, "context_b": context_b,
        "value": _f(value), "ci_low": _f(ci_low), "ci_high": _f(ci_high), "n": int(n), "note": note,
    }


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> the long table with the contract's columns and dtypes."""
    df = pd.DataFrame.from_records(rows, columns=METRIC_COLUMNS)
    for col in ["value", "ci_low", "ci_high"]:
        df[col] = df[col].astype(float)
    df["n"] = df["n"].astype("int64")
    for col in ["run_id", "model", "instrument", "metric", "dimension", "context_a", "context_b", "note"]:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return df


def choose_level(scores: pd.DataFrame, level: str | None = None) -> str | None:
    """The score level used for stability/effects/variance: ``level`` if given, else ``basic`` when
    present (the 10 Schwartz values of the PVQ), else ``dimension``, else the first one present."""
    if "level" not in scores.columns:
        return None
    present = [str(x) for x in scores["level"].dropna().unique()]
    if level is not None:
        return level
    for cand in ("basic", "dimension"):
        if cand in present:
            return cand
    return present[0] if present else None
