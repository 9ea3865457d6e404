"""option_order's default is ``balanced`` (issue 25, item 8): a study that does not set it compares baseline and
personas like for like, and a store holding this study's run under the old default (``permute-persona``) is
named in one line; the old run resumes when the study sets ``option_order: permute-persona`` explicitly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from helpers import cli_in_process as vs

from valuescope.analysis.metrics import compute_metrics
from valuescope.execution.runner import run_study
from valuescope.known_truth.simulate import prepare
from valuescope.study.spec import OLD_DEFAULT_OPTION_ORDER, Study, load_study, study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec


def _data(tmp_path: Path, **over) -> dict:
    data = {"name": "dflt", "output": str(tmp_path / "out"), "report": False,
            "models": [{"name": "syn", "backend": "synthetic", "synthetic": {"persona_sd": 0.0}}],
            "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "WEAK", "TREATED", "CRUEL"]}],
            "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 4, "seeds": [111]}]}}
    data.update(over)
    return data


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_study_file_and_python_default_is_balanced(tmp_path):
    assert Study().option_order == "balanced"
    assert load_study(_write(tmp_path, "s.yaml", _data(tmp_path))).option_order == "balanced"


def test_old_default_run_named_in_one_line_and_resumes_when_set_explicitly(tmp_path):
    old_file = _write(tmp_path, "old.yaml", _data(tmp_path, option_order=OLD_DEFAULT_OPTION_ORDER))
    new_file = _write(tmp_path, "new.yaml", _data(tmp_path))
    (old_res,) = run_study(load_study(old_file))  # what the old default stored (the same run id: tested below)
    assert old_res.new == old_res.planned and old_res.notes == []
    cli = vs("run", str(new_file), "-q", "--no-report")
    assert cli.returncode == 0, cli.stderr
    notes = [ln for ln in cli.stderr.splitlines() if "old default" in ln]
    assert len(notes) == 1, cli.stderr
    new_id = notes[0].split("new run ")[1].split(":")[0]
    assert notes[0] == (
        f"note: this store holds run {old_res.run_id} of this study under the old default option_order: "
        f"permute-persona; the default is now balanced, so this is a new run {new_id}: set option_order: "
        f"permute-persona in the study to resume {old_res.run_id}")
    assert new_id != old_res.run_id and new_id.startswith("dflt-syn-")
    # the explicit old setting resumes the stored run: nothing asked again, no note
    (again,) = run_study(load_study(old_file))
    assert again.run_id == old_res.run_id and again.already_done == again.planned and again.new == 0
    assert again.notes == []
    # the new default's run, resumed, still says it (the old run is still there), once per model
    (new_again,) = run_study(load_study(new_file))
    assert new_again.run_id == new_id and new_again.new == 0 and len(new_again.notes) == 1


def test_no_note_without_an_old_run_or_with_the_key_set(tmp_path):
    (res,) = run_study(study_from_dict(_data(tmp_path)))
    assert res.notes == []
    (res,) = run_study(study_from_dict(_data(tmp_path, option_order="balanced")))
    assert res.notes == []


def test_default_design_gives_like_for_like_steerability(tmp_path):
    """The issue's case: a study that does not set option_order got steerability NaN in every row (the baseline
    under one permutation, each persona under its own); under the new default every row is compared and a
    persona-blind model is null."""
    study = study_from_dict(_data(tmp_path, instruments=[{"name": "mfq30"}],
                                  population={"baseline": True, "sources": [{"kind": "wvs", "n": 24, "seeds": [111]}]}))
    sim = prepare(study)
    resp = sim.responses(SyntheticSpec(persona_sd=0.0, letter_bias=[0.1, 0.1, 0.5, 0.1, 0.1, 0.1], letter_weight=0.5))
    m = compute_metrics(resp, None, n_boot=50, n_perm=200, convergence_sizes=())
    jsd = m[m["metric"] == "steerability_jsd_soft"]
    assert len(jsd) == 5 and np.isfinite(jsd["value"]).all() and (jsd["value"] < 0.01).all(), jsd
    p = m[m["metric"] == "steerability_p_soft"]
    assert len(p) == 5 and np.isfinite(p["value"]).all()
