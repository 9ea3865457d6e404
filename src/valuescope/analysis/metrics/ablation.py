"""Two runs that form an ablation pair, compared as Lee et al. (2024) compare them.

``ablation_kind(study_a, study_b)`` reads the two runs' study settings (the ``study`` dict stored with a
run) and says which ablation they are:

* ``item_order``: they differ in ``item_order`` (fixed vs shuffle) and/or ``administration``
  (independent vs sequential) only -> item-order r: Pearson r of per-item mean answers, per dimension
  (over the dimension's items) and pooled over all items (Lee et al.: r = 0.77);
* ``forced_free``: they differ in ``forced_choice`` only -> forced-vs-free Spearman rho of per-dimension
  mean answers (Lee et al.: 0.90-0.98);
* ``seed``: they differ in the study ``seed`` and/or the persona-set seeds only -> seed-to-seed Pearson r
  of per-dimension and of per-item mean answers (Lee et al.: > 0.99).

Differences in population size and in the instruments asked are allowed (items and dimensions present
in both runs are compared). Anything else (another model, another option-order design, other contexts)
is not an ablation pair: ``compare_runs`` then returns one row whose note lists the differing settings.

Both readings: ``_hard`` correlates means of the chosen option's scale value (``argmax_value``),
``_soft`` means of the probability-weighted value (``expected``). Persona condition and baseline are
compared separately (``condition``), per context present in both runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import pearson_last, spearman_last
from valuescope.study.identity import ABLATION_FREE

COMPARE_COLUMNS = ["run_a", "run_b", "comparison", "model", "instrument", "condition", "context", "metric",
                   "dimension", "value", "ci_low", "ci_high", "n", "note"]
_KINDS = {
    "item_order": {"item_order", "administration"},
    "forced_free": {"forced_choice"},
    "seed": {"seed"},
}
READINGS = (("hard", "argmax_value"), ("soft", "expected"))


def _seeds(study: dict[str, Any]) -> list[Any]:
    return [s.get("seeds") for s in (study.get("population") or {}).get("sources", []) if isinstance(s, dict)]


def study_differences(study_a: dict[str, Any], study_b: dict[str, Any]) -> set[str]:
    """Top-level study settings that differ (models compared by what identifies them)."""
    keys = set(study_a) | set(study_b)
    out = {k for k in keys if study_a.get(k) != study_b.get(k)}
    if "models" in out:
        ident = ("name", "backend", "path", "model")
        ma = [{k: m.get(k) for k in ident} for m in study_a.get("models") or []]
        mb = [{k: m.get(k) for k in ident} for m in study_b.get("models") or []]
        if ma == mb or not ma or not mb:
            out.discard("models")
    return out


def ablation_kind(study_a: dict[str, Any], study_b: dict[str, Any], same_model: bool = True) -> tuple[str | None, str]:
    """``(kind, reason)``: kind in item_order / forced_free / seed, or None with the reason."""
    if not same_model:
        return None, "the runs are of different models: a model comparison, not an ablation pair"
    diff = study_differences(study_a, study_b) - ABLATION_FREE
    if _seeds(study_a) != _seeds(study_b):
        diff.add("seed")
    if not diff:
        return None, "the two runs have the same design: no ablation to compare"
    for kind, allowed in _KINDS.items():
        if diff <= allowed:
            return kind, ""
    return None, "not an ablation pair: the runs differ in " + ", ".join(sorted(diff))


def _means(df: pd.DataFrame, by: str, value: str) -> pd.Series:
    v = df[df["valid"].astype(bool) & df["dimension"].notna()]
    v = v.assign(_ctx=v["context"].astype(str), _dim=v["dimension"].astype(str), _item=v["item_id"].astype(str))
    keys = ["instrument", "condition", "_ctx", "_dim"] + (["_item"] if by == "item" else [])
    return v.groupby(keys)[value].mean()


def _corr_rows(a: pd.Series, b: pd.Series, *, by: str, method: str, metric: str,
               per_dimension: bool) -> list[dict[str, Any]]:
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    corr = pearson_last if method == "pearson" else spearman_last
    out = []
    for (inst, cond, ctx), g in joined.groupby(level=[0, 1, 2], sort=True):
        parts = [("", g)]
        if per_dimension:
            parts += list(g.groupby(level=3, sort=True))
        for dim, sub in parts:
            x, y = sub["a"].to_numpy(float), sub["b"].to_numpy(float)
            r, n = corr(x, y)
            lo, hi = fisher_interval(float(r), int(n), spearman=method != "pearson")
            note = "" if np.isfinite(r) else f"undefined: fewer than 3 shared {by}s or zero variance"
            if np.isfinite(r) and np.allclose(x, y, rtol=0, atol=1e-9):
                note = ("the same mean answers in both runs (e.g. the same queries, answered once and reused): "
                        "r = 1 by construction, not a finding")
            elif np.isfinite(r) and not np.isfinite(lo):
                note = f"no interval: {int(n)} shared {by}s (an interval needs at least 4)"
            out.append({"instrument": inst, "condition": cond, "context": ctx, "metric": metric,
                        "dimension": str(dim), "value": float(r), "ci_low": lo, "ci_high": hi, "n": int(n),
                        "note": note})
    return out


def fisher_interval(r: float, n: int, spearman: bool = False) -> tuple[float, float]:
    """95% interval of a correlation over ``n`` pairs by Fisher's z: atanh(r) +- 1.96 se; NaN below 4 pairs.

    Pearson: se = 1/sqrt(n - 3); at |r| = 1 (identical answers, r = 1 by construction) the interval is (r, r).
    Spearman: Bonett & Wright's (2000) se = sqrt((1 + r^2 / 2) / (n - 3)). Fieller, Hartley & Pearson's
    sqrt(1.06 / (n - 3)) covered a normal pair's population rho_s in only 0.91 (n = 10) and 0.93 (n = 30) of
    replications at rho = 0.9 (0.947 and 0.955 with Bonett-Wright). With few units every rank can agree (r = +-1;
    P = 0.23 at n = 5, rho = 0.9), where Fisher's z is infinite: the interval is then that of the nearest value
    below, 1 - 12 / (n (n^2 - 1)), closed at +-1 ((1, 1) covered 0.76 of those replications, this 0.99).
    Measured coverage: tests/test_metrics_ablation.py::test_fisher_interval_covers_a_known_correlation."""
    if not np.isfinite(r) or n < 4:
        return float("nan"), float("nan")
    edge = abs(r) >= 1
    if edge and not spearman:
        return r, r
    if edge:
        r = float(np.sign(r)) * (1 - 12 / (n * (n * n - 1)))
    se = np.sqrt((1 + r * r / 2 if spearman else 1.0) / (n - 3))
    z = np.arctanh(r)
    lo, hi = float(np.tanh(z - 1.959964 * se)), float(np.tanh(z + 1.959964 * se))
    if edge:
        lo, hi = (lo, 1.0) if r > 0 else (-1.0, hi)
    return lo, hi


def compare_runs(a: pd.DataFrame, b: pd.DataFrame, study_a: dict[str, Any], study_b: dict[str, Any]) -> pd.DataFrame:
    """The cross-run numbers of an ablation pair (module docstring); columns ``COMPARE_COLUMNS``."""
    run_a = str(a["run_id"].iloc[0]) if len(a) else ""
    run_b = str(b["run_id"].iloc[0]) if len(b) else ""
    model_a = str(a["model"].iloc[0]) if len(a) else ""
    model_b = str(b["model"].iloc[0]) if len(b) else ""
    kind, reason = ablation_kind(study_a, study_b, same_model=model_a == model_b)
    base = {"run_a": run_a, "run_b": run_b, "model": model_a}
    if kind is None:
        return pd.DataFrame([{**base, "comparison": "none", "instrument": "", "condition": "", "context": "",
                              "metric": "", "dimension": "", "value": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                              "n": 0, "note": reason}],
                            columns=COMPARE_COLUMNS)
    rows: list[dict[str, Any]] = []
    for reading, col in READINGS:
        if kind == "item_order":
            rows += _corr_rows(_means(a, "item", col), _means(b, "item", col), by="item", method="pearson",
                               metric=f"item_order_r_{reading}", per_dimension=True)
        elif kind == "forced_free":
            rows += _corr_rows(_means(a, "dimension", col), _means(b, "dimension", col), by="dimension",
                               method="spearman", metric=f"forced_free_rho_{reading}", per_dimension=False)
        else:
            rows += _corr_rows(_means(a, "dimension", col), _means(b, "dimension", col), by="dimension",
                               method="pearson", metric=f"seed_r_dimension_{reading}", per_dimension=False)
            rows += _corr_rows(_means(a, "item", col), _means(b, "item", col), by="item", method="pearson",
                               metric=f"seed_r_item_{reading}", per_dimension=False)
    if not rows:
        rows = [{"instrument": "", "condition": "", "context": "", "metric": "", "dimension": "", "value": np.nan,
                 "ci_low": np.nan, "ci_high": np.nan, "n": 0, "note": "no item answered in both runs"}]
    frame = pd.DataFrame([{**base, "comparison": kind, **r} for r in rows], columns=COMPARE_COLUMNS)
    frame["n"] = frame["n"].astype("int64")
    return frame
