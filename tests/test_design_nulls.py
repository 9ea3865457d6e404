"""Issue 15: a persona-blind model that answers by letter position must score no steerability and no
rank-order stability under the balanced option-order design; the older designs are shown to fake both.

The model here is a known truth small enough to write down: it never reads the persona; it puts
probability on letter j in proportion to ``BIAS[j]`` (the embedded SmolLM2's habit: most mass on C),
times a weak pull towards high or low options that depends only on the item (so answers have some
content to rank), plus a little noise from the whole prompt, as sampling would give (the same for
every persona in expectation). Through the real planner, runner, store, tidy table, scoring and metrics functions.
"""

from __future__ import annotations

import hashlib
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import SharedBackend

from valuescope.analysis.metrics import compute_metrics
from valuescope.analysis.metrics._common import metrics_frame
from valuescope.analysis.metrics.dimension_metrics import dimension_metric_rows
from valuescope.analysis.metrics.stability import stability_rows
from valuescope.analysis.scoring import score_personas
from valuescope.analysis.tables import load_run
from valuescope.core.types import LetterScores
from valuescope.design.instruments import load_instrument
from valuescope.execution.runner import run_study
from valuescope.known_truth.simulate import prepare
from valuescope.store.sqlite import Store
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec

BIAS = (0.10, 0.12, 0.45, 0.13, 0.10, 0.10)


def _uniform(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


class LetterModel:
    """Persona-blind and letter-biased: reads only the option labels and the item text."""

    name = "letter-model"
    system_role = True

    def __init__(self, instruments: list[str]) -> None:
        self.rank: dict[str, float] = {}
        for name in instruments:
            for part in load_instrument(name=name).parts.values():
                k = part.scale.k
                for i, label in enumerate(part.scale.labels):
                    self.rank[label] = i / (k - 1) - 0.5

    def score(self, requests):
        out = []
        for r in requests:
            item = r.messages[-1].content[r.shared_chars:]
            theta = _uniform(item) - 0.5 + 0.1 * (_uniform(repr(r.messages)) - 0.5)
            w = [BIAS[j] * math.exp(2.0 * theta * self.rank[label]) for j, label in enumerate(r.labels)]
            out.append(LetterScores(tuple(x / sum(w) for x in w), 0.0))
        return out

    def generate(self, requests):
        return ["Fine, thank you." for _ in requests]

    def close(self) -> None:
        pass


def _run(tmp_path, name: str, option_order: str, **extra):
    data = {"name": name, "output": str(tmp_path / name), "report": False, "option_order": option_order, **extra}
    study = study_from_dict(data)
    instruments = [i.name for i in study.instruments]
    (res,) = run_study(study, backend_factory=lambda _m: LetterModel(instruments))
    assert res.failed == 0 and res.new == res.planned
    with Store(study.output) as store:
        return load_run(store, res.run_id, with_metrics=False)


def _steerability(tables) -> pd.DataFrame:
    """The shipped like-for-like steerability (soft JSD, its CI, its permutation p), one row per dimension."""
    m = compute_metrics(tables.responses, None, n_boot=50, n_perm=400, seed=0, convergence_sizes=())
    jsd = m[m["metric"] == "steerability_jsd_soft"].set_index("dimension")
    p = m[m["metric"] == "steerability_p_soft"].set_index("dimension")["value"].rename("p")
    return jsd[["value", "ci_low", "ci_high", "note"]].join(p)


def test_letter_biased_model_has_no_steerability_under_the_balanced_design(tmp_path):
    design = {"population": {"baseline": True, "sources": [{"kind": "wvs", "n": 12, "seeds": [111]}]},
              "instruments": [{"name": "mfq30"}]}
    for order in ("balanced", "fixed"):  # fixed: one order for everyone, like for like too
        steer = _steerability(_run(tmp_path, order, order, **design))
        assert len(steer) == 5 and steer["value"].notna().all(), steer
        # null: no permutation test rejects at 1%
        assert (steer["p"] > 0.01).all(), (order, steer)
        if order == "balanced":  # and every interval reaches the truth 0 (under "fixed" the baseline is one
            # answer per item, whose prompt noise the interval holds fixed: issue 25 item 1, the baseline as unit)
            assert (steer["ci_low"] == 0.0).all(), steer
    # permute-persona: the baseline under one order, each persona under its own: no like-for-like comparison,
    # so the shipped metric gives none (the pooled JSD reads the letter habit as steerability: 0.059 here)
    permuted = _steerability(_run(tmp_path, "permuted", "permute-persona", **design))
    assert permuted["value"].isna().all() and permuted["note"].str.contains("like for like").all()


# slow: 60 personas x PVQ-40 x 5 topics (12,000 queries) through the runner and store with the Python letter model
# above, about 10 s each on 2 lightly loaded cores; the same designs on the synthetic model run in the default
# suite (test_synthetic_letter_biased_model_through_the_designs)
@pytest.mark.slow
@pytest.mark.parametrize(("option_order", "expect_stable"), [("balanced", False), ("permute-persona", True)])
def test_letter_biased_model_has_no_rank_order_stability_under_the_balanced_design(
        tmp_path, option_order, expect_stable):
    design = {"population": {"baseline": False, "sources": [{"kind": "wvs", "n": 60, "seeds": [111]}]},
              "instruments": [{"name": "pvq40", "wording": "male"}],
              "contexts": {"topics": ["poem", "joke", "history", "chess", "grammar"], "n_messages": [1],
                           "max_tokens": 16}}
    tables = _run(tmp_path, option_order, option_order, **design)
    rows = stability_rows(tables.scores, (tables.run_id, tables.model, "pvq40"), n_boot=0, seed=0)
    head = {r["metric"]: r["value"] for r in rows if r["dimension"] == "" and r["context_a"] == "all"}
    if expect_stable:  # one permutation per persona kept across topics: rankings follow the permutation
        assert head["rank_order"] > 0.5, head  # 0.55 here
    else:  # a rotation drawn afresh per topic: nothing about the persona carries over
        assert abs(head["rank_order"]) < 0.1, head  # 0.01 here


# --------------------------------------------------------------------------- the synthetic known-truth model

#: persona-blind (no persona effect, no drift) and letter-biased: 70% of every answer follows the letter shown
SYNTHETIC = {"persona_sd": 0.0, "drift_sd": 0.0, "item_sd": 0.7, "query_sd": 0.3, "letter_weight": 0.7,
             "letter_bias": list(BIAS)}


# the donation task (coins per race, not centred): a letter habit under one permutation per persona shifts all
# of that persona's answers alike, so its ranking repeats in every topic (the simulation: 0.99). The
# PVQ's MRAT centring removes such a constant shift; the embedded model's letter habit also interacts with
# content, which the centring does not remove (test above).
DONATION_ITEMS = [f"{race}_{i:02d}" for race in ("elf", "dwarf", "orc", "human", "hobbit") for i in range(1, 5)]


def _synthetic_run(name: str, option_order: str, synthetic: dict | None = None, **design) -> SimpleNamespace:
    """The study planned by the real planner and answered by the synthetic model on simulated tables
    (known_truth.simulate: the responses a run through runner and store gives, test_synthetic_backend.py)."""
    sim = prepare(study_from_dict({"name": name, "report": False, "option_order": option_order,
                                   "models": [{"name": "truth", "backend": "synthetic"}], **design}))
    resp = sim.responses(SyntheticSpec(**(synthetic or SYNTHETIC)))
    return SimpleNamespace(responses=resp, scores=score_personas(resp, sim.instruments),
                           run_id=resp["run_id"].iloc[0], model=resp["model"].iloc[0])


def test_synthetic_letter_biased_model_through_the_designs():
    steer = {order: _steerability(_synthetic_run(
        f"steer-{order}", order, instruments=[{"name": "mfq30"}],
        population={"baseline": True, "sources": [{"kind": "wvs", "n": 30, "seeds": [111]}]}))
        for order in ("balanced", "permute-persona")}
    # balanced: like for like, the letter habit cancels: no dimension steers, no test rejects at 1%
    assert (steer["balanced"]["value"] < 0.002).all(), steer
    assert (steer["balanced"]["p"] > 0.01).all(), steer
    # permute-persona: no like-for-like pair exists, so the shipped metric gives none (a pooled JSD would read
    # the letter habit under different orders as steerability)
    assert steer["permute-persona"]["value"].isna().all(), steer
    assert steer["permute-persona"]["note"].str.contains("like for like").all(), steer
    ro = {}
    for order in ("balanced", "permute-persona"):
        tables = _synthetic_run(
            f"ro-{order}", order, instruments=[{"name": "donation", "items": DONATION_ITEMS}],
            population={"baseline": False, "sources": [{"kind": "wvs", "n": 60, "seeds": [111]}]},
            contexts={"topics": ["poem", "joke", "history", "chess", "grammar"], "n_messages": [1]})
        rows = stability_rows(tables.scores, (tables.run_id, tables.model, "donation"), n_boot=0, seed=0)
        ro[order] = next(r["value"] for r in rows if r["metric"] == "rank_order" and r["dimension"] == ""
                         and r["context_a"] == "all")
    assert abs(ro["balanced"]) < 0.1, ro
    assert ro["permute-persona"] > 0.3, ro


def _steer_p(resp: pd.DataFrame, seed: int) -> pd.Series:
    """The shipped steerability permutation p (probabilities reading), one per dimension, without intervals."""
    rows = dimension_metric_rows(resp, ("r", "truth", "mfq30"), n_boot=0, n_perm=400, seed=seed)
    return metrics_frame(rows).query("metric == 'steerability_p_soft'").set_index("dimension")["value"]


@pytest.mark.slow  # 20 replications x 400 permutations
def test_synthetic_letter_biased_model_steerability_false_positive_rate():
    """The model above over 40 replications on simulated tables (known_truth.simulate: the same responses the
    runner stores, tested in test_synthetic_backend.py), balanced, context none, 30 WVS personas: steerability
    p < 0.05 in at most 7% of the 200 p-values. The model seed is redrawn per replication (it keys the query
    noise of the baseline and of every persona); the personas stay one draw (persona_sd 0: they change nothing
    but the rotation of orders, which stays the design under test). 200 p-values: binomial sd at 0.05 is 0.015,
    so a valid test exceeds 0.07 with probability about 0.1 if they were independent (they share a baseline per
    replication, so somewhat more); the answer-level test this guards against gave 0.455. Measured 0.050 (and
    0.052 over 120 replications) through the runner before. Issue 28 (time): 20 replications, 100 p-values; the
    ceiling 0.07 was the nominal 0.05 plus 1.30 of those SDs and is the same 1.30 SDs now (0.0218): 0.078."""
    sim = prepare(study_from_dict({
        "name": "fpr", "report": False, "option_order": "balanced",
        "models": [{"name": "truth", "backend": "synthetic"}], "instruments": [{"name": "mfq30"}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 30, "seeds": [1]}]}}))
    pvals = pd.concat([_steer_p(sim.responses(SyntheticSpec(**{**SYNTHETIC, "seed": r})), seed=r)
                       for r in range(1, 21)])
    rate = float((pvals < 0.05).mean())
    ceiling = 0.05 + 1.30 * math.sqrt(0.05 * 0.95 / len(pvals))
    assert len(pvals) == 100 and pvals.notna().all() and rate <= ceiling, rate


# --------------------------------------------------------------------------- the embedded model (answers by letter)


def _jsd_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits along the last axis, written out here (not the package's)."""
    def h(x: np.ndarray) -> np.ndarray:
        return -np.sum(np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0), axis=-1)
    return h((p + q) / 2) - (h(p) + h(q)) / 2


# slow: the embedded model (shared through the session fixture) answers 3 personas x 3 items + the baseline under
# the 6 balanced orders, 27 queries
@pytest.mark.slow
def test_embedded_demo_steerability_is_like_for_like(tmp_path, embedded_backend):
    """The demo's design (balanced, 3 WVS personas, one MFQ-30 item for each of 3 dimensions) on the embedded model,
    whose letter habit also depends on the content (what the synthetic and letter models here cannot show): the
    baseline's answers to one item move with the order shown (the letter habit is there, of the size an
    unmatched comparison would read as steerability: the pooled JSD under permute-persona read 0.059 on half of
    MFQ-30), while the like-for-like steerability stays under a twentieth of it. That permute-persona gives no
    number is a property of the design, shown on the letter and synthetic models above."""
    from valuescope.study.presets import adapt, load_preset

    mfq = load_instrument(name="mfq30")
    items = list({it.dimension: it.id for it in reversed(mfq.items) if it.dimension is not None}.values())[:3]
    study = adapt(load_preset("demo"), scale=0.25, output=str(tmp_path / "demo"))
    study = study.model_copy(update={"report": False, "instruments": [
        study.instruments[0].model_copy(update={"items": items})]})
    assert study.option_order == "balanced" and len(items) == 3
    (res,) = run_study(study, backend_factory=lambda _m: SharedBackend(embedded_backend))
    assert res.failed == 0 and res.new == res.planned == (3 + 6) * 3
    with Store(study.output) as store:
        tables = load_run(store, res.run_id, with_metrics=False)
    steer = _steerability(tables)
    base = tables.responses[tables.responses["condition"] == "baseline"]
    probs = [g[[f"p_{i + 1}" for i in range(6)]].to_numpy(float) for _, g in base.groupby("item_id")]
    across_orders = float(np.mean([_jsd_bits(p[i], p[j]) for p in probs
                                   for i in range(len(p)) for j in range(i + 1, len(p))]))
    assert len(steer) == 3 and steer["value"].notna().all(), steer
    assert across_orders > 0.05, across_orders  # 0.20 here (bits; 0.20 with 5 items and 6 personas too)
    # 0.0, 0.002 and 0.0005 here (intervals up to 0.0056; 0.0 in all five dimensions with 6 personas): a mean under
    # 0.010; reading a tenth of the habit would fail
    assert steer["value"].mean() < across_orders / 20, (steer, across_orders)
