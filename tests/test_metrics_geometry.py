"""Persona-space and steering metrics on hand-made vectors and answer tables (docs/geometry.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from valuescope.analysis.metrics import geometry as G
from valuescope.analysis.metrics.steering import steering_rows


def test_explained_variance_by_hand():
    # x spread: values +-2 (sum of squares 8), y spread: +-1 (sum of squares 2) -> 0.8 / 0.2
    P = np.array([[2.0, 0], [-2, 0], [0, 1], [0, -1]]) + 5.0
    ev = G.explained_variance(P)
    np.testing.assert_allclose(ev[:2], [0.8, 0.2], atol=1e-12)
    assert len(ev) == 2 or np.allclose(ev[2:], 0)
    assert np.isnan(G.explained_variance(np.ones((4, 3)))).all()  # no variation: undefined, not 1/0


def test_contrast_axis_positions_and_cosine_by_hand():
    P = np.array([[1.0, 0], [3, 0], [2, 1], [2, -1]])  # mean (2, 0)
    b = np.array([6.0, 0])
    c = G.contrast_vector(P, b)
    np.testing.assert_allclose(c, [4, 0])
    np.testing.assert_allclose(G.axis_positions(P, b, c), [5, 3, 4, 4])
    assert G.axis_positions(P, b, c).mean() == pytest.approx(np.linalg.norm(c))
    comps, _ = G.principal_axes(np.array([[0.0, 0], [1, 0], [2, 0], [3, 0.01]]), 1)
    assert G.abs_cosine(c, comps[0]) == pytest.approx(1.0, abs=1e-4)  # PC1 along the axis
    comps, _ = G.principal_axes(np.array([[0.0, 0], [0, 1], [0, 2], [0.01, 3]]), 1)
    assert G.abs_cosine(c, comps[0]) == pytest.approx(0.0, abs=1e-2)  # PC1 orthogonal to it
    assert np.isnan(G.abs_cosine(np.zeros(2), c))


def test_parallel_null_separates_structure_from_noise():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(40, 60))
    structured = noise + 6.0 * rng.normal(size=(40, 1)) * rng.normal(size=(1, 60)) / np.sqrt(60) * 3
    null_noise = G.parallel_null(noise, np.random.default_rng(2), 30)
    null_struct = G.parallel_null(structured, np.random.default_rng(2), 30)
    # noise: its PC1 share is inside what column-permuted copies give
    lo, hi = np.quantile(null_noise, [0.01, 0.99])
    assert lo - 0.03 <= G.explained_variance(noise)[0] <= hi + 0.03
    # one shared direction: far above its null
    assert G.explained_variance(structured)[0] > 2 * np.quantile(null_struct, 0.99)


def test_correlation_ci_perfect_and_null():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    r, lo, hi, n = G.correlation_ci(x, 3 * x + 1, rng, 200)
    assert (r, lo, hi, n) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0), 50)
    r, lo, hi, n = G.correlation_ci(rng.normal(size=300), rng.normal(size=300), np.random.default_rng(3), 300)
    assert lo < 0 < hi and abs(r) < 0.15
    r, lo, hi, n = G.correlation_ci(x, np.ones(50), rng, 100)  # no variation: NaN, not 0
    assert np.isnan(r) and np.isnan(lo)


def tidy(rows: list[tuple[str, str, str, list[float]]], run_id: str = "r") -> pd.DataFrame:
    """(persona_id, item_id, dimension, probs over 2 options) -> tidy responses."""
    recs = []
    for pid, item, dim, probs in rows:
        recs.append({"run_id": run_id, "model": "m", "condition": "baseline" if pid == "baseline" else "persona",
                     "persona_id": pid, "context": "none", "repeat": 0, "instrument": "inst", "item_id": item,
                     "dimension": dim, "k": 2, "p_1": probs[0], "p_2": probs[1], "argmax": int(np.argmax(probs)) + 1,
                     "valid": True, "outside_mass": 0.1, "expected": probs[1]})
    return pd.DataFrame.from_records(recs)


def test_persona_steerability_by_hand():
    df = tidy([("baseline", "i1", "d1", [1, 0]), ("baseline", "i2", "d2", [1, 0]),
               ("same", "i1", "d1", [1, 0]), ("same", "i2", "d2", [1, 0]),
               ("flip", "i1", "d1", [0, 1]), ("flip", "i2", "d2", [0, 1]),
               ("half", "i1", "d1", [1, 0]), ("half", "i2", "d2", [0, 1])])
    s = G.persona_steerability(df).set_index("unit")["steerability"]
    # JSD([1,0],[0,1]) = 1 bit; "half" moves one of two dimensions fully
    assert s["same"] == 0.0 and s["flip"] == pytest.approx(1.0) and s["half"] == pytest.approx(0.5)


def test_persona_steerability_is_like_for_like():
    """A persona answer is compared only with the baseline under the same (item, option order)."""
    df = tidy([("baseline", "i1", "d1", [0.9, 0.1]), ("p", "i1", "d1", [0.9, 0.1]), ("p", "i2", "d1", [0.1, 0.9])])
    df["option_order"] = ["0,1", "0,1", "1,0"]  # i2 under an order the baseline never saw: left out
    assert G.persona_steerability(df).set_index("unit").loc["p", "steerability"] == 0.0


@pytest.mark.slow
def test_persona_steerability_is_bias_corrected(monkeypatch):
    """A persona-blind model with answer noise: the plug-in per-persona JSDs are all positive (0.03 on average
    here), the bias-corrected ones are 0 on average over replications (each replication shares one noisy baseline, so
    a single one is off by a common amount, which does not move a correlation with the axis)."""
    from valuescope.known_truth.simulate import prepare
    from valuescope.study.spec import study_from_dict
    from valuescope.study.synthetic_spec import SyntheticSpec

    sim = prepare(study_from_dict({
        "name": "g", "report": False, "models": [{"name": "s", "backend": "synthetic"}],
        "instruments": [{"name": "mfq30"}], "option_order": "balanced",
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 40, "seeds": [1]}]}}))
    blind = [sim.responses(SyntheticSpec(persona_sd=0.0, query_sd=0.8, item_sd=0.5, temperature=0.5, seed=r))
             for r in range(4)]
    corrected = np.mean([G.persona_steerability(b)["steerability"].mean() for b in blind])
    monkeypatch.setattr(G, "jackknife_scalar", lambda value, loo, **kw: (value, np.nan, np.nan))
    plug_in = np.mean([G.persona_steerability(b)["steerability"].mean() for b in blind])
    assert plug_in > 0.02 and abs(corrected) < 0.25 * plug_in, (plug_in, corrected)


def states_table(P: np.ndarray, b: np.ndarray, layer: int = 3) -> pd.DataFrame:
    recs = [{"persona_id": f"p{i}", "condition": "persona", "persona": {"id": f"p{i}", "kind": "text"},
             "context": "none", "repeat": 0, "layer": layer, "vector": P[i].astype(np.float32)} for i in range(len(P))]
    recs.append({"persona_id": "baseline", "condition": "baseline", "persona": {"id": "baseline", "kind": "baseline"},
                 "context": "none", "repeat": 0, "layer": layer, "vector": b.astype(np.float32)})
    return pd.DataFrame.from_records(recs)


def test_geometry_rows_axis_correlates_with_steerability():
    # 6 personas at distance 1..6 from the baseline along x; steerability grows with the distance
    dist = np.arange(1, 7, dtype=float)
    P = np.stack([-dist, np.array([0.1, -0.1, 0.2, -0.2, 0.05, -0.05])], axis=1)
    b = np.zeros(2)
    rows = [("baseline", "i1", "d1", [1, 0])]
    rows += [(f"p{i}", "i1", "d1", [1 - d / 7, d / 7]) for i, d in enumerate(dist)]
    m = pd.DataFrame(G.geometry_rows(states_table(P, b), tidy(rows), None, run_id="r", model="m", n_boot=100))
    get = m.set_index("metric")
    assert get.loc["geometry_var_pc1", "value"] > 0.99 and get.loc["geometry_var_pc1", "dimension"] == "layer=3"
    assert get.loc["geometry_axis_pc1_cos", "value"] == pytest.approx(1.0, abs=1e-2)
    assert get.loc["geometry_axis_norm", "value"] == pytest.approx(3.5, abs=1e-5)
    r = get.loc["geometry_axis_steer_r"]
    assert r["value"] > 0.95 and r["ci_low"] > 0.8 and r["instrument"] == "inst" and r["n"] == 6
    assert "no per-persona scores" in get.loc["geometry_axis_shift_r", "note"]
    # a persona-blind model: same answers whatever the persona -> r undefined, with a note
    blind = [("baseline", "i1", "d1", [0.7, 0.3])] + [(f"p{i}", "i1", "d1", [0.7, 0.3]) for i in range(6)]
    m = pd.DataFrame(G.geometry_rows(states_table(P, b), tidy(blind), None, run_id="r", model="m", n_boot=50))
    row = m.set_index("metric").loc["geometry_axis_steer_r"]
    assert np.isnan(row["value"]) and "no variation" in row["note"]


def test_geometry_rows_too_few_personas_and_no_baseline():
    P = np.eye(3)[:2]
    m = pd.DataFrame(G.geometry_rows(states_table(P, np.zeros(3)), tidy([]).reindex(columns=["dimension"]), None,
                                     run_id="r", model="m", n_boot=10))
    assert np.isnan(m["value"]).all() and "fewer than 3" in m["note"].iloc[0]
    st = states_table(np.eye(4), np.zeros(4))
    st = st[st["condition"] == "persona"]
    m = pd.DataFrame(G.geometry_rows(st, tidy([]), None, run_id="r", model="m", n_boot=10)).set_index("metric")
    assert "no baseline" in m.loc["geometry_axis_norm", "note"]
    assert m.loc["geometry_var_pc1", "value"] == pytest.approx(1 / 3)  # 4 orthonormal points: 3 equal PCs


def test_steering_rows_zero_when_nothing_changes_and_toward_baseline():
    base = [("baseline", "i1", "d1", [0.9, 0.1]), ("baseline", "i2", "d2", [0.8, 0.2])]
    pers = [(p, i, d, v) for p, v in (("a", [0.2, 0.8]), ("b", [0.4, 0.6]), ("c", [0.3, 0.7]))
            for i, d in (("i1", "d1"), ("i2", "d2"))]
    ref = tidy(base + pers, run_id="ref")
    same = tidy(base + pers, run_id="st")
    m = pd.DataFrame(steering_rows(ref, same, None, None, run_id="st", ref_run_id="ref", model="m", n_boot=50))
    deltas = m[m["metric"].str.startswith("steer_delta_") & (m["metric"] != "steer_delta_score")]
    assert len(deltas) and (deltas["value"] == 0).all() and (deltas["ci_low"] == 0).all()
    assert (deltas["ci_high"] == 0).all() and (deltas["context_b"] == "ref").all()
    # steered personas answer exactly as the unsteered baseline: the distance to it drops by all of it
    moved = tidy(base + [(p, i, d, [0.9, 0.1] if d == "d1" else [0.8, 0.2]) for p, i, d, _ in pers], run_id="st")
    m = pd.DataFrame(steering_rows(ref, moved, None, None, run_id="st", ref_run_id="ref", model="m", n_boot=50))
    row = m[(m["metric"] == "steer_delta_to_reference") & (m["dimension"] == "")].iloc[0]
    from valuescope.analysis.metrics.inertia import jsd

    before = np.mean([jsd(np.array([0.9, 0.1]), np.array([0.3, 0.7])), jsd(np.array([0.8, 0.2]), np.array([0.3, 0.7]))])
    assert row["value"] == pytest.approx(-before) and row["ci_high"] < 0
    cap = m.set_index("metric")
    assert cap.loc["steer_outside_mass", "value"] == pytest.approx(0.1)
    assert cap.loc["steer_valid_share_ref", "value"] == 1.0
