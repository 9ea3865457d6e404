"""Run identity (valuescope.study.identity) against what the version before it wrote.

``tests/data/run_ids_v1.json``: 18 studies (every option-order design, sequential administration, shuffled items,
free choice, contexts, run options changed, geometry, steering, hf/llama.cpp/openai/synthetic models, two models,
a PVQ-RR population of named personas), each with the run id and the digest of every query key that the code
before issue 27 gave. ``tests/data/store_v1_identity.sql``: the SQL dump of a store that version wrote (two
synthetic runs, plus an unsteered hf reference and its steered run, registered). Every study sets
``option_order`` explicitly, so a later change of its default leaves these ids as they are.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from valuescope.execution.runner import run_study
from valuescope.execution.session import plan_model, resolve
from valuescope.store.sqlite import Store
from valuescope.study import identity
from valuescope.study.spec import Study, study_from_dict

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "run_ids_v1.json").read_text())


@pytest.mark.parametrize("label", sorted(CASES))
def test_run_ids_and_keys_are_byte_identical(label: str):
    case = CASES[label]
    study = study_from_dict(case["study"])
    resolved = resolve(study)
    for model in study.models:
        want = case["runs"][model.name]
        assert resolved.run_id(model) == want["run_id"]
        keys = [q.key for q in plan_model(resolved, model)]
        assert len(keys) == want["n_queries"]
        assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == want["keys_sha256"]
        assert {q.run_id for q in plan_model(resolved, model)} == {want["run_id"]}


def test_run_options_never_change_the_id():
    base = study_from_dict(CASES["base"]["study"])
    m = base.models[0]
    for name in identity.RUN_OPTIONS:
        assert name in Study.model_fields, name
        other = {"output": "x", "report": False, "executor": "ray", "ray": {"workers": 3},
                 "geometry": {"layers": [1]}, "score_from": "answer", "human": {"norms": "n.yaml"}}[name]
        changed = study_from_dict({**CASES["base"]["study"], name: other})
        assert identity.run_id(changed, m) == identity.run_id(base, m), name
    # and every other setting is part of it (seed as an example of each)
    assert identity.run_id(base.model_copy(update={"seed": 1}), m) != identity.run_id(base, m)


def _restore(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(directory / "valuescope.sqlite")
    db.executescript((DATA / "store_v1_identity.sql").read_text())
    db.close()
    return directory


def _refuse(model):
    raise AssertionError(f"a resumed run asked the model {model.name} again")


def test_a_store_written_before_resumes_without_migration_or_new_queries(tmp_path: Path):
    out = _restore(tmp_path / "store")
    for label in ("base", "sequential"):
        study = study_from_dict({**CASES[label]["study"], "output": str(out)})
        [res] = run_study(study, backend_factory=_refuse)
        assert res.run_id == CASES[label]["runs"]["syn"]["run_id"]
        assert res.already_done == res.planned == CASES[label]["runs"]["syn"]["n_queries"] and res.new == 0
    with Store(out, create=False, migrate=False) as store:
        assert store.migrated_from is None
        assert len(store.runs()) == 4


def test_the_reference_of_a_steered_run_is_found_one_way(tmp_path: Path):
    """Run side (the study and its instruments) and read side (the stored run) name the same reference."""
    out = _restore(tmp_path / "store")
    steered = study_from_dict(CASES["steer"]["study"])
    m = steered.models[0]
    reference = CASES["geometry"]["runs"]["h"]["run_id"]  # the same study, unsteered, recording states
    with Store(out, create=False) as store:
        info = store.run(CASES["steer"]["runs"]["h"]["run_id"])
        stored = Study.model_validate(info.study)
        assert store.reference_run_id(stored, m, info.instruments) == reference
        assert identity.reference_run_id(steered, m, resolve(steered).instruments_content) == reference
        assert identity.run_id(identity.reference_study(steered), m, info.instruments) == reference
