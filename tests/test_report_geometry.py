"""Report figures of persona space and steering dose-response, from hand-made tables (no model)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from valuescope.output.report import write_report
from valuescope.output.report.data import RunData
from valuescope.output.report.derive import Skip
from valuescope.output.report.figures_geometry import dose, persona_space


def positions() -> pd.DataFrame:
    recs = [{"context": "none", "layer": 15, "unit": f"p{i}", "condition": "persona", "axis_position": float(i),
             "pc1": float(i), "pc2": float(i % 2), "attr_kind": "fantastical" if i > 2 else "assistant-like",
             "steerability": 0.1 * i} for i in range(6)]
    recs.append({"context": "none", "layer": 15, "unit": "baseline", "condition": "baseline", "axis_position": 0.0,
                 "pc1": -1.0, "pc2": 0.0, "attr_kind": None, "steerability": None})
    return pd.DataFrame.from_records(recs)


def doses() -> pd.DataFrame:
    return pd.DataFrame([{"reference": "ref", "run_id": f"r{a}", "add": a, "cap": None, "instrument": "mfq30",
                          "dimension": d, "score": 2.0 + a * (1 if d == "Harm" else -1), "n": 6}
                         for a in (0.0, 0.5, 1.0) for d in ("Harm", "Fairness")])


def test_figures_drawn_and_skipped_with_reasons():
    run = RunData(run_id="r", model="m", geometry=positions(), dose=doses())
    [(label, fig)] = persona_space(run)
    assert label == "layer 15" and "attr_kind" in fig.axes[0].get_title()
    [(inst, _)] = dose(run)
    assert inst == "mfq30"
    with pytest.raises(Skip, match="no residual-stream states"):
        persona_space(RunData(run_id="r", model="m"))
    with pytest.raises(Skip, match="fewer than two steering strengths"):
        dose(RunData(run_id="r", model="m", dose=doses()[lambda d: d["add"] == 0.0]))


def test_sections_only_for_runs_with_geometry(tmp_path: Path):
    html = write_report([RunData(run_id="r", model="m")], tmp_path / "a").read_text(encoding="utf-8")
    assert 'id="geometry"' not in html and 'id="dose"' not in html  # reports without states are unchanged
    html = write_report([RunData(run_id="r", model="m", geometry=positions(), dose=doses())],
                        tmp_path / "b").read_text(encoding="utf-8")
    for sid in ("geometry", "dose"):
        body = re.search(rf'<section id="{sid}".*?</section>', html, flags=re.S).group(0)
        assert "<img" in body and "skip-reason" not in body
