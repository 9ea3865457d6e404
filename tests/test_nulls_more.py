"""Null (false-positive) tests on simulated tables for metrics that had none (issue 25, item 9): Ipsative and
distance to neutral when no persona's profile carries over between contexts or resembles the baseline's;
narrowing when answers do not depend on the conversation's length.

The truth of each null is 0 by construction (profiles and answers drawn independently of context and length),
not computed by the code under test. An interval "misses" when it excludes 0; the false-positive rate is the
share of missing intervals over replications (target <= 0.07 for 95% intervals)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.metrics.narrowing import narrowing_rows
from valuescope.analysis.metrics.stability import stability_rows

VALUES = ("UN", "BE", "CO", "TR", "SE", "PO", "AC", "HE", "ST", "SD")
CONTEXTS = ("poem@3", "joke@3", "chess@3")


def independent_profiles(seed: int, n_personas: int = 30, repeats: int = 2, baseline_repeats: int = 4
                         ) -> pd.DataFrame:
    """A scores table whose every (persona, context, repeat) profile is a fresh N(0, 1) draw over the values, and
    the baseline's (context none) too: Ipsative and distance to neutral are 0 in the population."""
    rng = np.random.default_rng(seed)
    keys = [("persona", f"c{j:02d}", ctx, r) for j in range(n_personas) for ctx in CONTEXTS for r in range(repeats)]
    keys += [("baseline", "baseline", "none", r) for r in range(baseline_repeats)]
    score = rng.normal(size=len(keys) * len(VALUES))
    df = pd.DataFrame([k for k in keys for _ in VALUES], columns=["condition", "persona_id", "context", "repeat"])
    df["dimension"] = list(VALUES) * len(keys)
    return df.assign(run_id="r1", model="m", instrument="pvq40", level="basic", score=score, raw_score=score + 3.5,
                     population="synth", set_seed=pd.array([None] * len(df), dtype="Int64"),
                     topic=df["context"].str.split("@").str[0], n_messages=3, n_items=4, catch_failed=False)


def miss_rate(rows: pd.DataFrame) -> tuple[float, int]:
    ok = rows.dropna(subset=["ci_low", "ci_high"])
    return float(((ok["ci_low"] > 0) | (ok["ci_high"] < 0)).mean()), len(ok)


@pytest.mark.slow  # 40 replications: about 45 s on the loaded 2-core dev machine
def test_ipsative_and_distance_to_neutral_null():
    # measured at 200 replications (seeds 1000-1199), t interval over personas: see docs/metrics.md ("Means over
    # personas"); the percentile bootstrap it replaced missed 0.079 (ipsative) and 0.077 (distance), 0.105 for
    # the pooled ipsative row
    rows = pd.concat([pd.DataFrame(stability_rows(independent_profiles(rep), ("r1", "m", "pvq40"), n_boot=1,
                                                  seed=rep)) for rep in range(40)])
    for metric, per_rep in (("ipsative", 4), ("distance_to_neutral", 3)):
        sub = rows[rows["metric"] == metric]
        rate, n = miss_rate(sub)
        assert n == 40 * per_rep
        # 0.05 + 3 binomial SDs over 40 independent replications (rows within one are correlated)
        assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40), (metric, rate)
        # unbiased: the mean over replications within 3 SEs of 0 (SE from the spread of the estimates)
        v = sub["value"].to_numpy()
        assert abs(v.mean()) <= 3 * v.std(ddof=1) / np.sqrt(40), (metric, v.mean())


def flat_conversation_responses(seed: int, n_personas: int = 20, n_items: int = 12, k: int = 6,
                                lengths: tuple[int, ...] = (2, 4), topics: tuple[str, ...] = ("joke", "chess"),
                                repeats: int = 2, sharpen: tuple[float, float] = (0.0, 0.0)) -> pd.DataFrame:
    """Responses of a model whose answers do not depend on the conversation's length: every answer a Dirichlet
    draw around the item's centre (moved by a persona's fixed shift); contexts ``none`` (n = 0) and
    ``topic@n``. Every narrowing slope is 0 in the population. ``sharpen`` = (persona, baseline) plants
    narrowing: an answer at length n moves the share ``sharpen * n`` of its mass onto its most likely option
    (entropy falls with n)."""
    rng = np.random.default_rng(seed)
    centre = rng.integers(0, k, size=n_items)
    units = [("baseline", "baseline", 0)] + [("persona", f"p{j:03d}", int(rng.integers(-1, 2)))
                                             for j in range(n_personas)]
    ctxs = [("none", "none", 0)] + [(f"{t}@{n}", t, n) for t in topics for n in lengths]
    keys = [(c, p, s, ctx, t, n, r, i) for c, p, s in units for ctx, t, n in ctxs for r in range(repeats)
            for i in range(n_items)]
    df = pd.DataFrame(keys, columns=["condition", "persona_id", "_shift", "context", "topic", "n_messages", "repeat",
                                     "_item"])
    alpha = np.full((len(df), k), 0.3)
    alpha[np.arange(len(df)), np.clip(centre[df["_item"]] + df["_shift"], 0, k - 1)] += 5.0
    g = rng.gamma(alpha)
    p = g / g.sum(axis=1, keepdims=True)
    lam = np.where(df["condition"] == "persona", sharpen[0], sharpen[1]) * df["n_messages"].to_numpy()
    p = (1 - lam[:, None]) * p + lam[:, None] * np.eye(k)[p.argmax(axis=1)]
    df = df.assign(run_id="r1", model="m", instrument="mfq30", set_seed=pd.array([None] * len(df), dtype="Int64"),
                   item_id=[f"i{i}" for i in df["_item"]], dimension=np.where(df["_item"] % 2, "Harm", "Care"),
                   k=k, valid=True, expected=p @ np.arange(1, k + 1), argmax=p.argmax(axis=1) + 1,
                   **{f"p_{j + 1}": p[:, j] for j in range(k)})
    return df.drop(columns=["_shift", "_item"])


@functools.cache
def _narrowing_null(reps: int = 40) -> pd.DataFrame:
    return pd.concat([narrowing_rows(flat_conversation_responses(rep), n_boot=200, seed=rep).assign(_rep=rep)
                      for rep in range(reps)])


def _check_null(metrics: tuple[str, ...]) -> None:
    rows = _narrowing_null()
    for metric in metrics:
        rate, n = miss_rate(rows[rows["metric"] == metric])
        assert n == 40 * 3  # pooled and two dimensions per replication
        assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40), (metric, rate)


@pytest.mark.slow  # 40 replications, shared with the next test: about 60 s on the loaded dev machine
def test_narrowing_persona_slopes_null():
    # t intervals since issue 25 (docs/metrics.md "Narrowing slopes"); measured at 200 replications (seeds 0-199,
    # 600 intervals each): slope_persona 0.060, spread_slope 0.040 (the percentile bootstrap: 0.075 and 0.10 at
    # 40). Bound: 0.05 + 3 binomial SDs over 40 replications (the 3 rows of one replication are correlated)
    _check_null(("narrowing_slope_persona", "narrowing_spread_slope"))


@pytest.mark.slow
def test_narrowing_baseline_slopes_null():
    # measured at 200 replications (600 intervals): slope_baseline 0.045, slope_diff 0.067; the percentile
    # bootstrap over the baseline's 2-4 conversations per length missed 0.18 and 0.15 (strict xfail until then)
    _check_null(("narrowing_slope_baseline", "narrowing_slope_diff"))


def _dirichlet_draws(rng: np.random.Generator, centre: np.ndarray, k: int = 6) -> np.ndarray:
    """Answers drawn as ``flat_conversation_responses`` draws them around option ``centre`` (by hand)."""
    alpha = np.full((len(centre), k), 0.3)
    alpha[np.arange(len(centre)), centre] += 5.0
    g = rng.gamma(alpha)
    return g / g.sum(axis=1, keepdims=True)


@pytest.mark.slow  # the 40 replications shared with the slope tests; the truths by hand: about 2 s more
def test_narrowing_per_length_intervals_cover_the_truth():
    """Per-length intervals on the flat null, against truths computed here, not by the code under test. Every
    answer is a Dirichlet(5.3, 0.3, ...) draw up to a permutation of the options, so the mean normalised entropy
    is one constant at every length, for personas and baseline alike. The spread's truth per cell is the sd over
    personas (shift -1, 0, +1 equally likely, clipped to the scale) of the expected answer around the item's
    centre, averaged over the items of a dimension. The baseline has 2 conversations at n = 0 and 4 at n = 2, 4:
    the percentile bootstrap covered the entropy in 0.49 and 0.82-0.86 of intervals (100 replications), the
    t interval 0.94-0.96; the spread's jackknife t 0.94-0.96 (60 replications; percentile 0.88-0.92). Bound as the
    slopes': misses <= 0.05 + 3 binomial SDs over 40 replications (the rows of one replication are correlated)."""
    rng = np.random.default_rng(2024)
    k = 6
    answers = _dirichlet_draws(rng, np.zeros(400_000, dtype=int))  # the truth's MC se: 2.5e-4
    with np.errstate(all="ignore"):
        h_truth = float(np.mean(-np.where(answers > 0, answers * np.log2(answers), 0.0).sum(axis=1) / np.log2(k)))
    sd_of = []
    for c in range(k):
        shift = rng.integers(-1, 2, size=100_000)
        sd_of.append(float((_dirichlet_draws(rng, np.clip(c + shift, 0, k - 1)) @ np.arange(1, k + 1)).std()))
    rows = _narrowing_null()
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40)
    for metric in ("narrowing_entropy_persona", "narrowing_entropy_baseline"):
        sub = rows[rows["metric"] == metric]
        assert len(sub) == 40 * 3 * 3 and sub["ci_low"].notna().all()  # 3 dimension rows x 3 lengths
        miss = float(((sub["ci_low"] > h_truth) | (sub["ci_high"] < h_truth)).mean())
        assert miss <= bound, (metric, miss)
    spread, truths = rows[rows["metric"] == "narrowing_spread"], []
    for rep, sub in spread.groupby("_rep", sort=False):
        centre = np.random.default_rng(rep).integers(0, k, size=12)  # the generator's first draw: item centres
        by_dim = {"": centre, "Harm": centre[1::2], "Care": centre[0::2]}
        truths += [float(np.mean([sd_of[c] for c in by_dim[d]])) for d in sub["dimension"]]
    truth = np.asarray(truths)
    miss = float(((spread["ci_low"] > truth) | (spread["ci_high"] < truth)).mean())
    assert len(spread) == 40 * 9 and miss <= bound, miss


@pytest.mark.slow  # 10 replications: about 15 s on the loaded dev machine
def test_narrowing_planted_slopes_detected():
    """Power on a planted case: personas narrow (``sharpen`` 0.2 per message: slope about -0.06 per message),
    the baseline does not. The persona slope's interval lies below 0 and the difference's mostly below 0."""
    rows = pd.concat([narrowing_rows(flat_conversation_responses(rep, sharpen=(0.2, 0.0)), n_boot=50, seed=rep)
                      for rep in range(10)])
    below = rows[rows["metric"].str.contains("slope")].groupby("metric").apply(
        lambda g: float((g["ci_high"] < 0).mean()), include_groups=False)
    # measured at 30 replications (90 intervals): persona 1.00, diff 0.80 (the baseline's few conversations set
    # the difference's width); bounds: the measured rate - 3 binomial SDs over 10 replications
    assert below["narrowing_slope_persona"] >= 1.0 - 3 * np.sqrt(0.01 * 0.99 / 10)
    assert below["narrowing_slope_diff"] >= 0.8 - 3 * np.sqrt(0.8 * 0.2 / 10)
