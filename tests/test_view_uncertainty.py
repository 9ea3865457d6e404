"""What a researcher sees: one number format, the d grid with its uncertainty (table and heatmap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from metrics_synth import hand_scores
from scipy import stats

from valuescope.analysis.metrics import effects_grid
from valuescope.output.numbers import fmt_ci, fmt_num
from valuescope.output.report.data import RunData
from valuescope.output.report.derive import fcr_intervals
from valuescope.output.report.tables import effects_tables


@pytest.mark.parametrize(("value", "text"), [
    (0.5, "0.500"), (0.0234, "0.0234"), (12.3456, "12.3"), (1234.5, "1,234"), (1.0, "1.00"), (9.996, "10.0"),
    (0.00005, "< 0.001"), (-0.00005, "> -0.001"), (0.0, "0"), (-0.831, "-0.831"), (40, "40"), (100.0, "100"),
    (3.67e-16, "< 0.001"), (float("nan"), "–"), (None, "–"),
])
def test_number_format_by_hand(value, text):
    assert fmt_num(value) == text


def test_interval_same_format_and_missing_value():
    assert fmt_ci(0.001, 0.023, 0.267) == "0.00100 [0.0230, 0.267]"
    assert fmt_ci(5.38e-05, 0.000869, 0.026) == "< 0.001 [< 0.001, 0.0260]"
    assert fmt_ci(float("nan"), 0.1, 0.2) == "–"
    assert fmt_ci(0.3, float("nan"), 0.2) == "0.300"


def test_fcr_interval_by_hand():
    # one grid of 4 tested cells, 2 selected at alpha 0.05: level 1 - 2 * 0.05 / 4 -> z = Phi^-1(1 - 0.0125)
    e = pd.DataFrame({"run_id": "r", "model": "m", "instrument": "i", "context": "none",
                      "g": [1.0, -0.9, 0.2, 0.1], "g_low": [0.5, -1.3, -0.3, -0.4], "g_high": [1.5, -0.5, 0.7, 0.6],
                      "q": [0.001, 0.04, 0.5, 0.9]})
    out = fcr_intervals(e)
    z = stats.norm.ppf(1 - 0.0125) / stats.norm.ppf(0.975)
    assert out["g_low_adj"].iloc[0] == pytest.approx(1.0 - 0.5 * z)
    assert out["g_high_adj"].iloc[1] == pytest.approx(-0.9 + 0.4 * z)
    assert out["g_low_adj"].iloc[2:].isna().all()
    assert list(out["shown"]) == [True, True, False, False]


def _grid(rng: np.random.Generator, n: int, planted: float) -> pd.DataFrame:
    """n personas, binary attribute 'sex' and 3-level 'region'; only sex=f moves Harm (by `planted` SDs)."""
    prof, sex, region = {}, {}, {}
    for j in range(n):
        p = f"p{j}"
        sex[p] = "f" if j % 2 else "m"
        region[p] = ["north", "south", "west"][j % 3]
        prof[(p, "none", 0)] = [rng.normal() + (planted if sex[p] == "f" and dim == "Harm" else 0)
                                for dim in ("Harm", "Care", "Purity", "Loyalty")]
    return effects_grid(hand_scores(prof, ["Harm", "Care", "Purity", "Loyalty"], attrs={"sex": sex, "region": region}))


@pytest.mark.slow
def test_heatmap_colours_planted_effect_and_almost_no_noise():
    """Known truth over replications: a planted d = 1.2 with 60 personas is coloured in most replications;
    among null cells (no effect anywhere) the share coloured stays near the false-discovery level."""
    rng = np.random.default_rng(7)
    planted_shown, null_shown, null_cells = 0, 0, 0
    reps = 40
    for _ in range(reps):
        e = fcr_intervals(_grid(rng, 60, 1.2))
        is_planted = (e["attribute"] == "sex") & (e["dimension"] == "Harm")
        planted_shown += int(e.loc[is_planted, "shown"].iloc[0])
        null_shown += int(e.loc[~is_planted, "shown"].sum())
        null_cells += int((~is_planted).sum())
    assert planted_shown / reps > 0.8
    assert null_shown / null_cells < 0.02


def test_small_groups_give_no_coloured_cell_on_a_null_model():
    """12 personas, nothing planted: the demo's case; no cell is coloured in (almost) any replication."""
    rng = np.random.default_rng(3)
    shown = sum(int(fcr_intervals(_grid(rng, 12, 0.0))["shown"].sum()) for _ in range(20))
    assert shown <= 1


def test_effects_table_rows_have_d_ci_q_and_group_sizes():
    e = _grid(np.random.default_rng(1), 60, 1.2)
    run = RunData(run_id="r1", model="m", effects=e)
    (t,) = effects_tables(run)
    assert t.header == ["contrast", "n level/ref", "dimension", "g [95% CI]", "q", "adjusted CI"]
    harm = [r for r in t.rows if r[0] == "sex = f vs m" and r[2] == "Harm"]
    assert len(harm) == 1 and harm[0][1] == "30 / 30"
    cell = e[(e.attribute == "sex") & (e.dimension == "Harm")].iloc[0]
    assert harm[0][3] == fmt_ci(cell.g, cell.g_low, cell.g_high) and harm[0][5] != "–"
    assert len(t.rows) == int(e["g"].notna().sum())
    assert any("Benjamini-Hochberg" in n for n in t.notes)


def test_power_cells_carry_a_wilson_interval_by_hand():
    from valuescope.output.power_report import mc_interval, needed_lines, power_rows

    # Wilson 95% for 8 of 10: centre (0.8 + z^2/20) / (1 + z^2/10), half-width by the textbook formula
    z = 1.959964
    lo, hi = mc_interval(0.8, 10)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * np.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert mc_interval(1.0, 20)[1] == 1.0 and mc_interval(0.0, 20)[0] == 0.0
    table = pd.DataFrame({"n_personas": [40, 80], "kind": "effect", "metric": "d sex=Female:Harm", "target": 0.3,
                          "power": [0.5, 0.9], "reps": 20})
    header, rows = power_rows(table)
    assert header == ["personas", "sex=Female:Harm (d = 0.300)"]
    assert rows[0][0] == "40" and rows[1][1] == fmt_ci(0.9, *mc_interval(0.9, 20))
    (line,) = needed_lines(table, 0.8)
    assert line.startswith("sex=Female:Harm (d = 0.300): 80% power with about 70 personas")
    (line,) = needed_lines(table.assign(power=[0.1, 0.2]), 0.8)
    assert line == "sex=Female:Harm (d = 0.300): 80% power not reached with up to 80 personas"


def test_difference_interval_by_hand_and_coverage_for_independent_runs():
    """MOVER by hand; then known truth: two independent normal estimates with exact 95% intervals, the
    A - B interval covers the true difference about 95% of the time."""
    from valuescope.output.report.tables_compare import mover_difference

    d, lo, hi = mover_difference(0.5, 0.4, 0.7, 0.2, 0.1, 0.25)
    assert d == pytest.approx(0.3)
    assert lo == pytest.approx(0.3 - np.hypot(0.1, 0.05)) and hi == pytest.approx(0.3 + np.hypot(0.2, 0.1))
    rng = np.random.default_rng(5)
    se_a, se_b, z = 0.1, 0.2, stats.norm.ppf(0.975)
    hits = 0
    for _ in range(4000):
        a, b = rng.normal(0.3, se_a), rng.normal(0.1, se_b)
        _, lo, hi = mover_difference(a, a - z * se_a, a + z * se_a, b, b - z * se_b, b + z * se_b)
        hits += lo <= 0.2 <= hi
    assert 0.935 < hits / 4000 < 0.965


def test_two_runs_table_shows_a_b_and_difference():
    from valuescope.output.report.tables_compare import difference_tables

    def metrics(run_id, shift):
        return pd.DataFrame({"run_id": run_id, "model": "m", "instrument": "mfq30", "metric": "inertia_hard",
                             "dimension": ["Harm", "Care"], "context_a": "none", "context_b": "",
                             "value": [0.3 + shift, 0.2], "ci_low": [0.2 + shift, 0.1],
                             "ci_high": [0.4 + shift, 0.3], "n": 10, "note": ""})

    runs = [RunData(run_id="a", model="m", metrics=metrics("a", 0.2)), RunData(run_id="b", model="m",
                                                                               metrics=metrics("b", 0.0))]
    (t,) = difference_tables(runs)
    assert t.header == ["dimension", "metric", "A: a", "B: b", "A − B", "A − B CI"]
    harm = next(r for r in t.rows if r[0] == "Harm")
    assert harm[2] == "0.500 [0.400, 0.600]" and harm[3] == "0.300 [0.200, 0.400]"
    assert harm[4] == fmt_ci(0.2, 0.2 - np.hypot(0.1, 0.1), 0.2 + np.hypot(0.1, 0.1))
    assert harm[5] == "independent"  # no responses: nothing to pair


def test_counts_table_has_one_row_per_quantity_and_no_raw_dicts():
    from valuescope.output.report.tables import counts_table

    resp = pd.DataFrame({"valid": [True, True, False], "condition": "persona", "persona_id": ["a", "b", "b"],
                         "context": "none", "instrument": "mfq30", "outside_mass": [0.1, 0.2, 0.3]})
    counts = {"planned": 3, "answered": 3, "outside_mass_mean": 0.2, "methods": {"logprobs": 576}, "reused_from": {}}
    t = counts_table(RunData(run_id="r", model="m", responses=resp, counts=counts))
    labels = [r[0] for r in t.rows]
    assert len(labels) == len(set(labels))
    cells = dict(t.rows)
    assert cells["answers read by"] == "576 by logprobs" and cells["answers reused from other runs"] == "none"
    assert not any("{" in r[1] for r in t.rows)


def test_paired_difference_is_narrower_and_covers_zero_for_shared_personas():
    """Known truth: two runs of one persona-driven model (strong per-persona shifts, the same in both runs) that
    differ only in their answer noise (seed) have a true inertia difference of 0. Over replications on simulated
    tables the paired bootstrap's A - B interval covers 0 and is narrower than the independent combination (MOVER)
    of the runs' own intervals; personas renamed in B (nothing shared) fall back to the independent one."""
    from valuescope.analysis.metrics._common import metrics_frame
    from valuescope.analysis.metrics.dimension_metrics import dimension_metric_rows
    from valuescope.known_truth.simulate import prepare
    from valuescope.output.report.tables_compare import difference_frame, mover_difference
    from valuescope.study.spec import study_from_dict
    from valuescope.study.synthetic_spec import SyntheticSpec

    study = study_from_dict({"name": "pair", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
                             "instruments": [{"name": "mfq30"}], "option_order": "fixed",
                             "population": {"baseline": False, "sources": [{"kind": "wvs", "n": 30, "seeds": [111]}]}})
    sim = prepare(study)
    pids = sorted(sim.static["persona_id"].unique())
    dims = ["Harm", "Fairness", "Ingroup", "Authority", "Purity"]

    def metrics(resp: pd.DataFrame) -> pd.DataFrame:
        return metrics_frame(dimension_metric_rows(resp, ("r", "syn", "mfq30"), n_boot=200, n_perm=0, seed=0))

    rng = np.random.default_rng(1)
    hits, widths = [], []
    for r in range(8):
        shifts = {p: {d: float(rng.normal(0, 1.5)) for d in dims} for p in pids}
        spec = {"persona_sd": 0.0, "query_sd": 0.7, "temperature": 0.6, "personas": shifts}
        ra, rb = (sim.responses(SyntheticSpec(**spec, seed=2 * r + i)) for i in (0, 1))
        ma, mb = metrics(ra), metrics(rb)
        frame = difference_frame(ma, mb, ra, rb)
        frame = frame[frame["metric"].str.startswith("inertia")]
        assert len(frame) == 10 and set(frame["interval"]) == {"paired"}
        for x in frame.itertuples():
            _, lo, hi = mover_difference(x.a, x.a_low, x.a_high, x.b, x.b_low, x.b_high)
            hits.append(x.diff_low <= 0 <= x.diff_high)
            widths.append((x.diff_high - x.diff_low, hi - lo))
        if r == 0:  # nothing shared: the independent combination, said per row
            other = difference_frame(ma, mb, ra, rb.assign(persona_id=rb["persona_id"] + "-other"))
            assert set(other.loc[other["metric"].str.startswith("inertia"), "interval"]) == {"independent"}
    # 80 intervals (8 replications x 5 dimensions x 2 readings; measured 0.99): the binomial sd at 95% and
    # n = 80 is 0.024, and the intervals of one replication are correlated, so 3 sd of a quarter of n: 0.85
    assert np.mean(hits) >= 0.85
    paired, independent = np.array(widths).T
    assert np.mean(paired) < 0.8 * np.mean(independent)  # measured 0.65 at 10 replications


@pytest.mark.slow
def test_paired_difference_covers_a_planted_shift():
    """Known truth: run B is run A's model (random persona effects, the same draws in both) with Harm's latent
    mean shifted by +1; the true inertia difference is the two specs' population values (known_truth.truth).
    The paired interval covers it over replications; Harm rows only (the other dimensions are identical)."""
    from valuescope.analysis.metrics._common import metrics_frame
    from valuescope.analysis.metrics.dimension_metrics import dimension_metric_rows
    from valuescope.known_truth.simulate import prepare
    from valuescope.known_truth.truth import truth_tables
    from valuescope.output.report.tables_compare import difference_frame
    from valuescope.study.spec import study_from_dict
    from valuescope.study.synthetic_spec import SyntheticSpec

    study = study_from_dict({"name": "shift", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
                             "instruments": [{"name": "mfq30"}], "option_order": "fixed",
                             "population": {"baseline": False, "sources": [{"kind": "wvs", "n": 30, "seeds": [111]}]}})
    sim = prepare(study)
    a = SyntheticSpec(persona_sd=1.5, query_sd=0.7, temperature=0.6)
    b = a.model_copy(update={"baseline": {"Harm": 1.0}})

    def truth(spec: SyntheticSpec) -> pd.Series:
        t = truth_tables(sim, spec, n_target=3000).metrics
        return t[t["dimension"] == "Harm"].set_index("metric")["truth"]

    true = truth(a) - truth(b)
    assert true["inertia_hard"] < -0.05  # the planted shift moves Harm's answers toward the scale's top

    def harm(spec: SyntheticSpec, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        resp = sim.responses(spec.model_copy(update={"seed": seed}))
        resp = resp[resp["dimension"] == "Harm"]
        return metrics_frame(dimension_metric_rows(resp, ("r", "syn", "mfq30"), n_boot=200, n_perm=0,
                                                 seed=0)), resp

    hits = []
    for r in range(24):
        (ma, ra), (mb, rb) = harm(a, r), harm(b, r)
        frame = difference_frame(ma, mb, ra, rb).set_index("metric").loc[["inertia_hard", "inertia_soft"]]
        assert set(frame["interval"]) == {"paired"}
        hits += [lo <= true[m] <= hi for m, lo, hi in zip(frame.index, frame["diff_low"], frame["diff_high"],
                                                            strict=True)]
    # 48 intervals, two per replication (measured 0.95 at 20 replications): the binomial sd at 95% and n = 24
    # independent replications is 0.044; 3 sd below 0.95
    assert np.mean(hits) >= 0.82
