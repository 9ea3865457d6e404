"""Issue 17 under known truth (the synthetic backend, issue 16): a congruence bias planted as an identity
effect on the political topics is recovered by the motivated-reasoning metrics, the neutral control shows
none, and a model with no planted bias scores none.

How a bias is planted: the synthetic model does not read the tables, so without effects it answers every
evidence item 50/50 (eta = 0). An effect ``identity=liberal`` of +d on the topics whose success suits
liberals (and -d on those whose success suits conservatives; the mirror image for ``identity=conservative``)
makes a persona believe what suits its identity whatever the numbers. With K = 2, temperature 1 and no
other noise, P(better) = sigma(eta), so on every pair the congruent member is right with probability
sigma(d) and the incongruent one with 1 - sigma(d): the true bias is D = 2 sigma(d) - 1, exactly, on both
sides; on the neutral topics (no effect) D = 0.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.metrics.tension import congruence_summary, motivated_reasoning_rows
from valuescope.analysis.tables import load_run
from valuescope.design.instruments.evidence import TOPICS
from valuescope.execution.runner import run_study
from valuescope.known_truth.simulate import prepare
from valuescope.store.sqlite import Store
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec


def _effects(d: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {"identity=liberal": {}, "identity=conservative": {}}
    for t in TOPICS:
        if t.kind == "political":
            sign = 1.0 if t.works_flatters == "liberal" else -1.0
            out["identity=liberal"][t.id] = sign * d
            out["identity=conservative"][t.id] = -sign * d
    return out


def _study(output: str = "unused", model: dict | None = None, n: int = 12) -> dict:
    return {
        "name": "recovery", "output": output, "option_order": "permute-persona",  # as measured (the old default)
        "models": [model or {"name": "truth", "backend": "synthetic"}],
        "instruments": [{"name": "evidence", "n_items": 24, "seed": 3},
                        {"name": "evidence", "n_items": 24, "seed": 3, "debias": "consider-both-sides"}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": n, "seeds": [111], "identity": True}]},
    }


def _row(m, metric, side, inst="evidence"):
    r = m[(m.metric == metric) & (m.dimension == side) & (m.instrument == inst)]
    assert len(r) == 1, (metric, side, inst)
    return r.iloc[0]


def test_planted_bias_recovered_exactly_without_noise():
    d = 1.2
    spec = SyntheticSpec(persona_sd=0.0, effects=_effects(d))
    sim = prepare(study_from_dict(_study()))
    m = motivated_reasoning_rows(sim.responses(spec), sim.instruments, n_boot=100, n_perm=500)
    truth = 2 / (1 + math.exp(-d)) - 1
    for side in ("liberal", "conservative", "all"):
        for inst in ("evidence", "evidence.consider-both-sides"):
            assert _row(m, "evidence_bias_diff_soft", side, inst)["value"] == pytest.approx(truth)
            p_name = "evidence_bias_p_soft" if side == "all" else "evidence_bias_vs_baseline_p_soft"
            assert _row(m, p_name, side, inst)["value"] < 0.01
            assert _row(m, "control_bias_diff_soft", side, inst)["value"] == pytest.approx(0.0, abs=1e-12)
        assert _row(m, "evidence_bias_diff_hard", side)["value"] == pytest.approx(1.0)  # always the suiting answer
        assert _row(m, "evidence_bias_ratio_soft", side)["value"] == pytest.approx(
            (1 / (1 + math.exp(-d))) / (1 - 1 / (1 + math.exp(-d))))
        # the instruction changes nothing in a model that does not read it: the change is exactly 0
        assert _row(m, "evidence_debias_change_soft", side, "evidence.consider-both-sides")["value"] == \
            pytest.approx(0.0, abs=1e-12)
    assert _row(m, "evidence_accuracy_soft", "baseline")["value"] == pytest.approx(0.5)


def test_planted_bias_recovered_with_persona_noise_and_letter_bias():
    """Persona random effects and a strong letter-position bias: the CI covers the population value
    (E_u[2 sigma(d + u) - 1], u ~ N(0, 1)), the control CI covers 0; with no effect D is ~0."""
    d = 1.0
    u = np.random.default_rng(0).normal(size=200_000)
    truth = float(np.mean(2 / (1 + np.exp(-(d + u))) - 1))
    sim = prepare(study_from_dict(_study(n=60)))
    noisy = dict(persona_sd=1.0, letter_bias=[0.8, 0.2], letter_weight=0.3, seed=5)
    m = motivated_reasoning_rows(sim.responses(SyntheticSpec(effects=_effects(d), **noisy)), sim.instruments,
                                 n_boot=300, n_perm=1000)
    r = _row(m, "evidence_bias_diff_soft", "all")
    # the letter mix shrinks every answer towards 0.5 by (1 - letter_weight) on average over option orders
    assert r["ci_low"] < 0.7 * truth * 1.15 and r["ci_high"] > 0.7 * truth * 0.85
    assert r["ci_low"] > 0.2
    c = _row(m, "control_bias_diff_soft", "all")
    assert c["ci_low"] < 0 < c["ci_high"]
    null = motivated_reasoning_rows(sim.responses(SyntheticSpec(**noisy)), sim.instruments, n_boot=300, n_perm=1000)
    for prefix in ("evidence", "control"):
        n = _row(null, f"{prefix}_bias_diff_soft", "all")
        assert n["ci_low"] < 0 < n["ci_high"], prefix


def test_recovered_through_runner_store_and_cli_table(tmp_path):
    d = 0.8
    study = study_from_dict(_study(str(tmp_path), {"name": "truth", "backend": "synthetic",
                                                    "synthetic": {"persona_sd": 0.0, "effects": _effects(d)}}, n=4))
    (res,) = run_study(study)
    assert res.planned == res.new == 5 * 48
    with Store(tmp_path) as store:
        tables = load_run(store, res.run_id, n_boot=50)
    summary = congruence_summary(tables.metrics, measure="soft")
    truth = 2 / (1 + math.exp(-d)) - 1
    for side in ("liberal", "conservative", "all"):
        row = summary[(summary.identity == side) & (summary.instrument == "evidence")].iloc[0]
        assert row["diff"] == pytest.approx(truth) and row["control_diff"] == pytest.approx(0.0, abs=1e-12)
        assert row["ratio"] == pytest.approx((1 + truth) / (1 - truth))


def test_evenhandedness_collapse_and_narrowing_under_known_truth():
    """Identity effects on the values of the self-direction vs security dilemmas open a directed gap
    towards the favoured value (collapse > 0); without effects collapse is exactly 0; a model whose answers
    do not depend on the conversation has narrowing slopes of exactly 0."""
    from valuescope.analysis.metrics.evenhandedness import evenhandedness_rows
    from valuescope.analysis.metrics.narrowing import narrowing_rows

    study = study_from_dict({
        "name": "eh", "instruments": [{"name": "dilemmas"}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 10, "seeds": [111], "identity": True}]},
        "contexts": {"topics": ["none", "joke"], "n_messages": [1, 3]},
    })
    sim = prepare(study)
    planted = {"identity=liberal": {"self-direction": 1.5, "security": -1.5},
               "identity=conservative": {"self-direction": -1.5, "security": 1.5}}
    resp = sim.responses(SyntheticSpec(persona_sd=0.0, effects=planted))
    m = evenhandedness_rows(resp, sim.instruments, n_boot=100)
    none = m[m.context_a == "none"]
    for side in ("liberal", "conservative"):
        r = none[(none.metric == "collapse_directed") & (none.dimension == side)].iloc[0]
        # the effect sits on the few dilemmas with self-direction or security, and the CI generalises over
        # dilemmas (t on Q - 1 df, issue 25 item 9), so with 12 dilemmas it need not exclude 0 here
        assert r["value"] > 0.3, side
        assert none[(none.metric == "collapse") & (none.dimension == side)]["value"].item() > 0.3
    flat = evenhandedness_rows(sim.responses(SyntheticSpec(persona_sd=0.0)), sim.instruments, n_boot=50)
    assert np.allclose(flat[flat.metric.isin(["collapse", "collapse_directed"])]["value"], 0.0)
    nr = narrowing_rows(resp, n_boot=50)
    slopes = nr[nr.metric.str.contains("slope")]
    assert len(slopes) and np.allclose(slopes["value"], 0.0)


@pytest.mark.slow  # the preset at scale 0.1 (504 answers) and its tables at 200 bootstrap draws: ~9 CPU-s
def test_preset_at_scale_through_the_cli_on_the_synthetic_backend(tmp_path, monkeypatch):
    """`valuescope run --preset tension-motivated-reasoning --scale 0.1` on another backend: the printed
    per-identity table answers "how much more often is this persona right when the truth suits it?" with an
    interval, and the tables it was printed from recover the planted bias. Issue 28: the CLI in-process and
    without its report (31 s in the quiet durations run, most of it the report's 21 figures), the tables
    checked being the ones the CLI computed (recorded) instead of a second load_run; the congruence section's
    figure per condition (all three instruments) is test_tension_run's CLI test."""
    import yaml
    from helpers import cli_in_process

    import valuescope.output.api as api

    computed = []

    def recorded(*args, **kwargs):
        computed.append(load_run(*args, **kwargs))
        return computed[-1]

    monkeypatch.setattr(api, "load_run", recorded)
    d = 1.0
    spec = tmp_path / "truth.yaml"
    spec.write_text(yaml.safe_dump({"persona_sd": 0.0, "effects": _effects(d)}), encoding="utf-8")
    out = tmp_path / "out"
    res = cli_in_process("run", "--preset", "tension-motivated-reasoning", "--scale", "0.1", "--no-report",
                         "--model", f"backend=synthetic,name=truth,path={spec}", "-o", str(out))
    assert res.returncode == 0, res.stderr[-2000:]  # without -q: run prints its tables
    assert "504 queries planned" in res.stdout  # (5 personas + baseline under 2 orders) x 24 items x 3 conditions
    assert "right when the truth suits the identity" in res.stdout
    assert not (out / "report").exists()
    (tables,) = computed
    with Store(out) as store:
        assert [r.run_id for r in store.runs()] == [tables.metrics["run_id"].iloc[0]]
    summary = congruence_summary(tables.metrics, measure="soft")
    truth = 2 / (1 + math.exp(-d)) - 1
    assert len(summary) == 9  # 3 instruments x (liberal, conservative, all)
    assert np.allclose(summary["diff"], truth) and np.allclose(summary["control_diff"], 0.0)
    assert (summary["diff_low"] <= summary["diff"]).all() and (summary["diff"] <= summary["diff_high"]).all()


# --------------------------------------------------------------------------- issue 25: the model's own lean


def _lean(lam: float) -> dict[str, float]:
    """The model's own lean: it believes the policies that suit liberals work (+lam) and the others fail."""
    return {t.id: (lam if t.works_flatters == "liberal" else -lam) for t in TOPICS if t.kind == "political"}


def _mr_sim():
    """The motivated-reasoning preset's design (50 WVS personas with an identity, baseline under both orders,
    24 tables = 8 political pairs), plain instrument only."""
    return prepare(study_from_dict({
        "name": "lean", "instruments": [{"name": "evidence", "n_items": 24, "seed": 7}], "option_order": "balanced",
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 50, "seeds": [111], "identity": True}]}}))


def _replicate(sim, spec: SyntheticSpec, reps: int, *, n_boot: int = 200, n_perm: int = 200,
               measure: str = "soft", kind: str = "political"):
    """kahan_stats of ``reps`` replications (new persona, query and repeat draws; the tables stay). The
    evidence table is built once (``evidence_table``, tested above), and where its rows fall in the contrasts
    (``contrast_layout``: equal to ``contrasts`` on the table, test_contrast_layout_is_the_reference); each
    replication only brings new accuracies: the answers' probability on the correct option (soft) or whether
    the most probable option is the correct one (hard), on the ``kind`` topics (political, or the neutral
    control)."""
    from valuescope.analysis.metrics.congruence import contrast_layout, kahan_stats
    from valuescope.analysis.metrics.tension import evidence_table

    table = evidence_table(sim.responses(spec), sim.instruments)
    assert (table["item_id"].to_numpy() == sim.static["item_id"].to_numpy()).all()  # one row per query, in order
    sel = (table["kind"] == kind).to_numpy()
    assert sel.any()
    correct = table["correct"].to_numpy(dtype=int)
    layout = contrast_layout(table[sel])
    for r in range(reps):
        probs = sim.probs(spec.model_copy(update={"seed": 1000 + r}))
        y = probs[np.arange(len(probs)), correct]
        if measure == "hard":
            y = (np.nanargmax(probs, axis=1) == correct).astype(float)
        yield kahan_stats(layout.contrasts(y[sel]), np.random.default_rng(r), n_boot=n_boot, n_perm=n_perm)


def _reference_contrasts(table, measure: str) -> dict:
    """``congruence.contrasts`` as it was before ``contrast_layout`` (issue 28): the slow reference."""
    pairs = sorted(table["pair"].dropna().astype(str).unique())
    q = len(pairs)
    t = table[table["suits"].isin(("liberal", "conservative")) & table[measure].notna()]
    pair = pd.Index(pairs).get_indexer(t["pair"].astype(str))
    suits, y = t["suits"].to_numpy(), t[measure].to_numpy(dtype=float)
    pers = ((t["condition"] == "persona") & t["side"].isin(("liberal", "conservative"))).to_numpy()
    codes, units = pd.factorize(t["unit"].where(pers), sort=True)

    def cell_means(codes, n, suits, pair, y):
        out = []
        for side in ("liberal", "conservative"):
            m = suits == side
            tot = np.bincount(codes[m] * q + pair[m], weights=y[m], minlength=n * q)
            cnt = np.bincount(codes[m] * q + pair[m], minlength=n * q)
            with np.errstate(all="ignore"):
                out.append(np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan).reshape(n, q))
        return out

    xl, xc = cell_means(codes[pers], len(units), suits[pers], pair[pers], y[pers])
    half = np.isnan(xl) != np.isnan(xc)
    bad = np.isnan(xl) | np.isnan(xc)
    xl, xc = np.where(bad, np.nan, xl), np.where(bad, np.nan, xc)
    side = pd.Series(t["side"].to_numpy()[pers]).groupby(codes[pers]).first().reindex(range(len(units))).to_numpy()
    keep = (~bad).any(axis=1)
    base = (t["condition"] == "baseline").to_numpy()
    bl, bc = cell_means(np.zeros(int(base.sum()), dtype=np.int64), 1, suits[base], pair[base], y[base])
    bbad = np.isnan(bl[0]) | np.isnan(bc[0])
    return {"units": np.asarray(units)[keep], "side": side[keep], "xl": xl[keep], "xc": xc[keep],
            "base_l": np.where(bbad, np.nan, bl[0]), "base_c": np.where(bbad, np.nan, bc[0]), "pairs": pairs,
            "dropped": int(half.sum())}


def test_contrast_layout_is_the_reference():
    """``contrast_layout(table).contrasts(y)`` and ``contrasts`` give, bit for bit, what the code before them
    gave (``_reference_contrasts``), answers missing included: a persona with none, pairs with one member, a
    baseline pair with none; and kahan_stats' batched percentile and t intervals are the per-key ones."""
    from scipy import stats

    from valuescope.analysis.metrics._common import percentile_ci
    from valuescope.analysis.metrics.congruence import contrast_layout, contrasts
    from valuescope.analysis.metrics.intervals import t_bounds
    from valuescope.analysis.metrics.tension import evidence_table

    sim = prepare(study_from_dict(_study(n=6)))
    spec = SyntheticSpec(persona_sd=1.0, query_sd=0.5, effects=_effects(0.5))
    table = evidence_table(sim.responses(spec), sim.instruments)
    table = table[table["kind"] == "political"].reset_index(drop=True)
    rng = np.random.default_rng(0)
    layout = contrast_layout(table)
    for r in range(3):
        y = rng.uniform(size=len(table))
        if r:
            y[rng.uniform(size=len(y)) < 0.15 * r] = np.nan  # pairs with one member
            y[(table["unit"] == table.loc[table["condition"] == "persona", "unit"].iloc[0]).to_numpy()] = np.nan
            y[((table["condition"] == "baseline") & (table["pair"] == table["pair"].iloc[0])).to_numpy()] = np.nan
        want = _reference_contrasts(table.assign(soft=y), "soft")
        for got in (layout.contrasts(y), contrasts(table.assign(soft=y), "soft")):
            assert got.pairs == want["pairs"] and got.dropped == want["dropped"]
            for key in ("units", "side", "xl", "xc", "base_l", "base_c"):
                np.testing.assert_array_equal(getattr(got, key), want[key], strict=True)
        assert (want["dropped"] > 0) == (r > 0) and len(want["units"]) == 6 - (r > 0)
    reps = rng.normal(size=(100, 6))
    reps[rng.uniform(size=reps.shape) < 0.05] = np.nan
    for cols in ([0, 1, 2, 3, 4, 5], [j for j in range(6) if not np.isnan(reps[:, j]).any()]):
        lo, hi = percentile_ci(reps[:, cols])
        for j, col in enumerate(cols):
            lo1, hi1 = percentile_ci(reps[:, [col]])
            assert (lo[j], hi[j]) == (lo1[0], hi1[0])
    for value, se, df in ((0.3, 0.1, 4), (-1.2, 0.7, 49), (0.0, 2.0, 1)):
        half = float(stats.t.ppf(0.975, df)) * se
        assert t_bounds(value, se, df) == (value - half, value + half, float(2 * stats.t.sf(abs(value) / se, df)))


NULL_MODELS = {
    # persona-blind, its own lean on the evidence topics, answer noise per query
    "lean": SyntheticSpec(persona_sd=0.0, query_sd=0.5, baseline=_lean(0.4)),
    # the same with version-difficulty quirks (each table version its own offset) and a letter habit
    "quirks": SyntheticSpec(persona_sd=0.0, query_sd=0.5, item_sd=1.0, baseline=_lean(0.4),
                            letter_bias=[0.7, 0.3], letter_weight=0.3),
}


def test_own_lean_through_the_synthetic_model():
    """One replication of the lean-only model: D is +-lambda-ish per side (what the old per-side test read as
    motivated reasoning), the interaction and each side's D minus the baseline's are ~0."""
    sim = _mr_sim()
    m = motivated_reasoning_rows(sim.responses(NULL_MODELS["lean"]), sim.instruments, n_boot=100, n_perm=300)
    lean = _row(m, "evidence_baseline_lean_soft", "baseline")["value"]
    assert lean > 0.2
    assert _row(m, "evidence_bias_diff_soft", "liberal")["value"] > 0.15
    assert _row(m, "evidence_bias_diff_soft", "conservative")["value"] < -0.15
    assert abs(_row(m, "evidence_bias_diff_soft", "all")["value"]) < 0.05
    for side in ("liberal", "conservative"):
        r = _row(m, "evidence_bias_vs_baseline_soft", side)
        assert r["ci_low"] < 0 < r["ci_high"] and abs(r["value"]) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["soft", "hard"])
@pytest.mark.parametrize("model", sorted(NULL_MODELS))
def test_no_motivated_reasoning_false_positive_rate(model, measure):
    """500 replications of a model with no identity effect, on both readings (soft: probability on the
    correct option; hard: the most probable option is the correct one): the interaction's permutation p and
    each side's vs-baseline p reject at 0.05 in at most 7% of them (measured: docs/metrics.md). 500, not 200:
    a test whose true rate is 0.05 exceeds 0.07 in 8% of 200-replication runs, in 2% of 500-replication ones.
    The hard reading is the one the tables' bootstrap failed (0.40): a leaning model is right on nearly every
    pair, so the baseline often scores the same on all 8 pairs and the tables' spread read as ~0."""
    sim = _mr_sim()
    out = list(_replicate(sim, NULL_MODELS[model], 500, n_boot=100, measure=measure))
    for key in ("all:p", "liberal:vs_baseline_p", "conservative:vs_baseline_p"):
        rate = float(np.mean([o[key] <= 0.05 for o in out]))
        assert rate <= 0.07, (model, measure, key, rate)
    for key in ("all:diff", "liberal:vs_baseline", "conservative:vs_baseline"):  # the CIs agree with the tests
        miss = float(np.mean([not o[f"{key}_lo"] <= 0.0 <= o[f"{key}_hi"] for o in out]))
        assert miss <= 0.07, (model, measure, key, miss)
    # and a persona-specific lean (persona_sd 1) does not move the interaction either
    if model == "lean" and measure == "soft":
        noisy = NULL_MODELS[model].model_copy(update={"persona_sd": 1.0})
        rate = float(np.mean([o["all:p"] <= 0.05 for o in _replicate(sim, noisy, 500, n_boot=0)]))
        assert rate <= 0.07, rate


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["soft", "hard"])
def test_own_lean_vs_baseline_false_positive_rate_on_the_page_design(measure):
    """The own-lean case as docs/known_truth.md builds it (benchmarks/known_truth_page.py: 40 WVS personas,
    evidence seed 3, the default balanced order, query_sd 0.3), political topics and the neutral control:
    each side's vs-baseline p rejects in about 5% of replications on both readings. The ceiling was 0.07 over
    300: the nominal 0.05 plus 1.59 binomial SDs (0.0126); over the 150 run now (issue 28: time; sd 0.0178) the
    same 1.59 SDs: 0.078."""
    sim = prepare(study_from_dict({
        "name": "lean", "instruments": [{"name": "evidence", "n_items": 24, "seed": 3}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 40, "seeds": [111], "identity": True}]}}))
    spec = SyntheticSpec(persona_sd=0.0, query_sd=0.3, baseline=_lean(0.4))
    for kind in ("political", "neutral"):
        out = list(_replicate(sim, spec, 150, n_boot=0, n_perm=0, measure=measure, kind=kind))
        assert len(out) == 150
        for key in ("liberal:vs_baseline_p", "conservative:vs_baseline_p"):
            rate = float(np.mean([o[key] <= 0.05 for o in out]))
            assert rate <= 0.05 + 1.59 * math.sqrt(0.05 * 0.95 / len(out)), (kind, measure, key, rate)


@pytest.mark.slow
def test_planted_congruence_effect_covered():
    """A planted identity effect (d = 0.3) on top of the model's lean, persona noise, query noise and table
    quirks: the interaction and each side's vs-baseline CI cover their truth in >= 90% of 200 replications;
    the truth is the population value, computed here from the answer probabilities over 200 fresh draws."""
    from valuescope.analysis.metrics.kinds import identity_side

    sim = _mr_sim()
    spec = SyntheticSpec(persona_sd=1.0, query_sd=0.5, item_sd=0.5, baseline=_lean(0.4), effects=_effects(0.3))
    st = sim.static
    meta = {it.id: it.meta for it in sim.instruments["evidence"].items}
    pol = np.array([meta[i]["kind"] == "political" for i in st["item_id"]])
    correct = np.array([meta[i]["correct"] for i in st["item_id"]])
    suits = np.array([meta[i]["flatters"] for i in st["item_id"]], dtype=object)
    who = np.where(st["condition"] == "baseline", "baseline",
                   st["attr_identity"].map(identity_side).fillna("-").to_numpy(dtype=object))
    acc: dict[tuple[str, str], list[float]] = {}
    for r in range(200):
        p = sim.probs(spec, salt=f"truth{r}")
        pc = p[np.arange(len(p)), correct]
        for g in ("baseline", "liberal", "conservative"):
            for s in ("liberal", "conservative"):
                acc.setdefault((g, s), []).append(float(pc[pol & (who == g) & (suits == s)].mean()))
    a = {k: float(np.mean(v)) for k, v in acc.items()}
    base = a[("baseline", "liberal")] - a[("baseline", "conservative")]
    truth = {}
    for side, sign in (("liberal", 1.0), ("conservative", -1.0)):
        d = sign * (a[(side, "liberal")] - a[(side, "conservative")])
        truth[f"{side}:diff"], truth[f"{side}:vs_baseline"] = d, d - sign * base
    truth["all:diff"] = (truth["liberal:diff"] + truth["conservative:diff"]) / 2
    assert truth["all:diff"] > 0.05  # a real effect to cover
    out = list(_replicate(sim, spec, 200))
    for key in ("all:diff", "liberal:vs_baseline", "conservative:vs_baseline"):
        cover = float(np.mean([o[f"{key}_lo"] <= truth[key] <= o[f"{key}_hi"] for o in out]))
        assert cover >= 0.9, (key, cover)
    assert np.mean([o["all:p"] <= 0.05 for o in out]) >= 0.8  # and the interaction is found
