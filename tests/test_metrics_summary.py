"""The long metrics table: column contract, several runs, edge cases, export round trip, headline."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from metrics_synth import hand_rows, synth_responses, synth_scores

from valuescope.analysis.metrics import METRIC_COLUMNS, compute_metrics, headline
from valuescope.analysis.metrics.summary import HEADLINE_COLUMNS
from valuescope.study.spec import SpecError


def test_columns_and_types_are_the_contract():
    m = compute_metrics(synth_responses(n_personas=12), synth_scores(n_personas=12), n_boot=20)
    assert list(m.columns) == METRIC_COLUMNS == [
        "run_id", "model", "instrument", "metric", "dimension", "context_a", "context_b", "value", "ci_low",
        "ci_high", "n", "note"]
    assert m["n"].dtype == np.int64 and m["value"].dtype == float
    assert m["metric"].str.fullmatch(r"[a-z0-9_]+").all()
    # a note exactly where the value is NaN or a CI is missing for a reason
    assert (m.loc[m["value"].isna(), "note"] != "").all()


def test_several_runs_concatenated_equal_separate():
    r1 = synth_responses(n_personas=10, seed=1, run_id="r1")
    r2 = synth_responses(n_personas=14, seed=2, run_id="r2", model="other")
    s1 = synth_scores(n_personas=10, seed=1, run_id="r1")
    both = compute_metrics(pd.concat([r1, r2], ignore_index=True), s1, n_boot=30, seed=3)
    one = compute_metrics(r1, s1, n_boot=30, seed=3)
    two = compute_metrics(r2, None, n_boot=30, seed=3)
    assert set(both["run_id"]) == {"r1", "r2"}
    pd.testing.assert_frame_equal(both[both.run_id == "r1"].reset_index(drop=True), one)
    pd.testing.assert_frame_equal(both[both.run_id == "r2"].reset_index(drop=True), two)
    # r2 has no scores: stability rows say so
    assert (two.loc[two.metric == "rank_order", "note"] == "no per-persona scores given").all()


def _one(m, metric, dim):
    sel = m[(m.metric == metric) & (m.dimension == dim)]
    assert len(sel) == 1, (metric, dim)
    return sel.iloc[0]


def test_edge_cases_never_crash():
    z = [0.0] * 5
    onehot3 = [0, 0, 1.0, 0, 0, 0]
    df = hand_rows([
        # one persona, constant answers on "Con"
        ("persona", "A", "none", "c1", "Con", onehot3),
        ("persona", "A", "none", "c2", "Con", onehot3),
        ("baseline", "baseline", "none", "c1", "Con", onehot3),
        # a dimension whose only answer could not be read (missing item)
        ("persona", "A", "none", "m1", "Miss", None),
        # a catch item (no dimension) is left out
        ("persona", "A", "none", "catch", None, [1.0, *z]),
    ])
    m = compute_metrics(df, None, n_boot=20)
    inert = _one(m, "inertia_soft", "Con")
    assert inert["value"] == pytest.approx(1.0)  # H = 0 -> I = 1
    assert np.isnan(inert["ci_low"]) and "fewer than 2 personas" in inert["note"]
    assert _one(m, "top1_share_hard", "Con")["value"] == 1.0
    assert _one(m, "steerability_jsd_soft", "Con")["value"] == pytest.approx(0.0)
    # one persona: no respondent-level test (its unit is the persona), and the note says so
    p_soft = _one(m, "steerability_p_soft", "Con")
    assert np.isnan(p_soft["value"]) and "fewer than 2 personas" in p_soft["note"]
    miss = _one(m, "inertia_soft", "Miss")
    assert np.isnan(miss["value"]) and "no valid answers" in miss["note"]
    assert _one(m, "valid_share", "Miss")["value"] == 0.0
    assert not (m["dimension"] == "nan").any() and "catch" not in set(m["dimension"])
    # no baseline at all
    nb = compute_metrics(df[df.condition == "persona"], None, n_boot=5)
    s = _one(nb, "steerability_jsd_soft", "Con")
    assert np.isnan(s["value"]) and "no baseline" in s["note"]
    # only baseline rows: one row with a note
    ob = compute_metrics(df[df.condition == "baseline"], None, n_boot=5)
    assert "no persona answers" in ob[ob.metric == "inertia_hard"].iloc[0]["note"]


def test_steerability_uses_no_conversation_baseline_when_context_has_none():
    df = synth_responses(n_personas=8, contexts=("poem@3",), baseline=False)
    base = synth_responses(n_personas=1, contexts=("none",)).query("condition == 'baseline'")
    m = compute_metrics(pd.concat([df, base], ignore_index=True), None, n_boot=10)
    s = m[m.metric == "steerability_jsd_soft"]
    assert (s["context_a"] == "poem@3").all() and (s["context_b"] == "none").all()
    assert s["value"].notna().all()


def test_mixed_option_counts_give_note():
    df = hand_rows([("persona", "A", "none", "x", "D", [1.0, 0, 0, 0, 0, 0])])
    df2 = hand_rows([("persona", "A", "none", "y", "D", [1.0, 0, 0, 0])], k=4)
    m = compute_metrics(pd.concat([df, df2], ignore_index=True), None, n_boot=5)
    row = _one(m, "inertia_soft", "D")
    assert np.isnan(row["value"]) and "different numbers of options" in row["note"]


def test_missing_columns_raise_one_line_spec_error():
    df = synth_responses(n_personas=3).drop(columns=["valid"])
    with pytest.raises(SpecError, match="responses table: missing column"):
        compute_metrics(df, None)


def test_recomputed_from_export_files_equal(tmp_path):
    r = synth_responses(n_personas=15, set_seeds=(111, 333), seed=9)
    s = synth_scores(n_personas=15, seed=9)
    ref = compute_metrics(r, s, n_boot=40, seed=1)
    r.to_csv(tmp_path / "responses.csv", index=False)
    s.to_csv(tmp_path / "scores.csv", index=False)
    r.to_parquet(tmp_path / "responses.parquet")
    from_csv = compute_metrics(pd.read_csv(tmp_path / "responses.csv"), pd.read_csv(tmp_path / "scores.csv"),
                               n_boot=40, seed=1)
    from_pq = compute_metrics(pd.read_parquet(tmp_path / "responses.parquet"), s, n_boot=40, seed=1)
    for other in (from_csv, from_pq):
        assert other[["metric", "dimension", "context_a", "context_b", "n", "note"]].equals(
            ref[["metric", "dimension", "context_a", "context_b", "n", "note"]])
        for col in ("value", "ci_low", "ci_high"):
            np.testing.assert_allclose(other[col], ref[col], rtol=1e-9, atol=1e-12)


def test_headline_is_one_row_per_dimension():
    m = compute_metrics(synth_responses(n_personas=20), None, n_boot=30)
    h = headline(m)
    assert list(h.columns) == HEADLINE_COLUMNS
    assert sorted(h["dimension"]) == ["Fairness", "Harm", "Purity"]
    for name in ("inertia_hard", "inertia_soft", "steerability_jsd_hard", "top1_share_hard", "top2_adjacent_hard"):
        long = m[m.metric == name].set_index("dimension")
        # one rule: each headline number and its bounds are the long (exported) table's value, ci_low, ci_high
        for col, src in ((name, "value"), (f"{name}_low", "ci_low"), (f"{name}_high", "ci_high")):
            assert h.set_index("dimension")[col].to_dict() == pytest.approx(long[src].to_dict()), col
        assert long["ci_low"].notna().all()
    assert h["rank_order"].isna().all() and (h["n"] > 0).all()
    assert headline(m.iloc[0:0]).empty


def test_speed_of_a_200_persona_60_item_run():
    # measured, not asserted (timings on shared machines are noisy): printed with -s
    dims = tuple(f"D{i}" for i in range(10))
    r = synth_responses(n_personas=200, dims=dims, items_per_dim=6, seed=0)
    t = time.perf_counter()
    m = compute_metrics(r, None, n_boot=200)
    print(f"\n200 personas x 60 items, n_boot=200: {time.perf_counter() - t:.2f} s, {len(m)} rows")
    assert len(m[m.metric == "inertia_soft"]) == 10


def test_headline_gives_each_instrument_only_its_own_dimensions():
    """Two instruments with disjoint dimensions: no row pairs an instrument with another's dimension."""
    a = synth_responses(n_personas=8, dims=("Harm", "Fairness"), instrument="mfq30")
    b = synth_responses(n_personas=8, dims=("Tradition", "Power", "Benevolence"), instrument="pvq40", seed=3)
    h = headline(compute_metrics(pd.concat([a, b], ignore_index=True), None, n_boot=10))
    got = {(r.instrument, r.dimension) for r in h.itertuples()}
    assert got == {("mfq30", "Harm"), ("mfq30", "Fairness"), ("pvq40", "Tradition"), ("pvq40", "Power"),
                   ("pvq40", "Benevolence")}
    assert len(h) == 5
