"""geometry / steer settings: validation, run ids and keys, the activations table (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valuescope.design.plan import run_id_for
from valuescope.execution.geometry_run import attach_steering, axis_from_store
from valuescope.store.geometry import load_states, recorded_keys, write_states
from valuescope.store.sqlite import Store, StoreError
from valuescope.study.identity import reference_run_id, reference_study, stored_study
from valuescope.study.spec import SpecError, study_from_dict


def test_settings_validate_with_one_line_errors():
    with pytest.raises(SpecError, match="steer"):
        study_from_dict({"steer": {"layer": 3, "cap": 0.5, "cap_value": 1.0}})
    with pytest.raises(SpecError, match="steer.cap"):
        study_from_dict({"steer": {"layer": 3, "cap": 1.5}})
    with pytest.raises(SpecError, match="geometry.layers"):
        study_from_dict({"geometry": {"layers": [0, 2]}})
    with pytest.raises(SpecError, match="unknown key"):
        study_from_dict({"steer": {"layer": 3, "strength": 2}})


def test_geometry_keeps_the_run_id_and_steer_changes_it():
    plain = study_from_dict({})
    geo = study_from_dict({"geometry": {"layers": [2]}})
    capped = study_from_dict({"steer": {"layer": 2, "cap": 0.25}})
    added = study_from_dict({"steer": {"layer": 2, "add": 0.5}})
    m = plain.models[0]
    assert run_id_for(plain, m) == run_id_for(geo, m)
    ids = {run_id_for(s, m) for s in (plain, capped, added)}
    assert len(ids) == 3
    twin = reference_study(capped)
    assert twin.steer is None and twin.geometry.layers == [2] and run_id_for(twin, m) == run_id_for(plain, m)
    from valuescope.execution.runner import resolve

    inst = resolve(plain).instruments
    assert reference_run_id(capped, m, resolve(capped).instruments_content) == run_id_for(plain, m, inst)
    both = study_from_dict({"geometry": {"layers": [5]}, "steer": {"layer": 2}})
    assert reference_study(both).geometry.layers == [2, 5]


def test_steer_changes_every_query_key(tmp_path: Path):
    from valuescope.execution.runner import plan_model, resolve

    plain = study_from_dict({"instruments": [{"name": "mfq30", "items": ["HISTORY", "CRUEL"]}],
                             "option_order": "permute-persona"})  # one order for the baseline: 2 queries
    steered = plain.model_copy(update={"steer": study_from_dict({"steer": {"layer": 2, "add": 1.0}}).steer})
    a = {q.key for q in plan_model(resolve(plain), plain.models[0])}
    b = {q.key for q in plan_model(resolve(steered), steered.models[0])}
    assert len(a) == len(b) == 2 and not a & b


def _rows(run_id: str, persona: dict, vec: np.ndarray, layer: int = 4, key: str | None = None) -> dict:
    return {"run_id": run_id, "key": key or f"{persona['id']}-{layer}", "persona": persona, "context": "none",
            "repeat": 0, "layer": layer, "n_tokens": 12, "vector": vec}


def test_activations_table_roundtrip_resume_and_axis(tmp_path: Path):
    base = {"id": "baseline", "kind": "baseline", "description": None}
    rng = np.random.default_rng(0)
    vecs = {f"p{i}": rng.normal(size=8).astype(np.float32) for i in range(3)}
    b = rng.normal(size=8).astype(np.float32)
    with Store(tmp_path) as store:
        assert load_states(store, "r1").empty and recorded_keys(store, "r1") == set()
        assert store.db.execute("SELECT name FROM sqlite_master WHERE name = 'activations'").fetchone() is None
        rows = [_rows("r1", {"id": k, "kind": "text", "description": k}, v) for k, v in vecs.items()]
        assert write_states(store, rows + [_rows("r1", base, b)]) == 4
        assert write_states(store, rows) == 0  # recorded keys are ignored, never duplicated
        assert write_states(store, [_rows("r2", base, b)]) == 1  # the same key in another run is its own row
        assert recorded_keys(store, "r1") == {"p0-4", "p1-4", "p2-4", "baseline-4"}
        st = load_states(store, "r1")
        assert list(st["condition"]) == ["persona"] * 3 + ["baseline"]
        for k, v in vecs.items():
            got = st.loc[st["persona_id"] == k, "vector"].iloc[0]
            assert got.dtype == np.float32 and np.array_equal(got, v)  # bit for bit
        axis = axis_from_store(store, "r1", 4)
        want = b.astype(np.float64) - np.mean([v.astype(np.float64) for v in vecs.values()], axis=0)
        np.testing.assert_allclose(axis.contrast, want, rtol=1e-12)
        assert axis.threshold(0.25) == pytest.approx(float(b @ (want / np.linalg.norm(want))))
        with pytest.raises(StoreError, match="layer 7"):
            axis_from_store(store, "r1", 7)
        with pytest.raises(StoreError, match="baseline and of personas"):
            axis_from_store(store, "r2", 4)


def test_steering_needs_the_hf_backend(tmp_path: Path):
    study = study_from_dict({"steer": {"layer": 2, "cap": 0.5}})
    with Store(tmp_path) as store, pytest.raises(SpecError, match="needs backend 'hf'"):
        attach_steering(study, study.models[0], object(), store)


def test_reference_found_in_the_store_is_the_unsteered_run(tmp_path: Path):
    plain = study_from_dict({"name": "g"})
    steered = study_from_dict({"name": "g", "steer": {"layer": 2, "cap": 0.5}})
    m = plain.models[0]
    from valuescope.study.identity import run_id

    with Store(tmp_path) as store:
        store.register_run(run_id(plain, m), "g", m.name, stored_study(plain, m), 1, None, {})
        store.register_run(run_id(steered, m), "g", m.name, stored_study(steered, m), 1, None, {})
        assert store.reference_run_id(steered, m, {}) == run_id(plain, m) != run_id(steered, m)
