"""Issue 17 end to end on the synthetic known-truth model (what is planned, stored, computed and reported does
not depend on which model answers; the embedded model runs the CLI in test_cli's real run and the report of a
real run in test_report_real_run): the motivated-reasoning preset, reduced, through the CLI (in-process); the
evenhandedness preset, reduced, with a conversation-length sweep; metrics, the per-identity table and the
report sections."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import cli_in_process

from valuescope.analysis.metrics.tension import congruence_summary
from valuescope.analysis.tables import load_run
from valuescope.execution.runner import plan_model, resolve, run_study
from valuescope.output.report import write_report
from valuescope.output.report.data import from_tables
from valuescope.store.sqlite import Store
from valuescope.study.presets import adapt, load_preset, preset_text
from valuescope.study.spec import ModelSpec

#: a noisy, letter-biased synthetic model: every answer differs, so every interval below is a real one
SYNTHETIC = {"name": "truth", "backend": "synthetic",
             "synthetic": {"query_sd": 0.5, "letter_weight": 0.3, "letter_bias": [0.1, 0.1, 0.4, 0.2, 0.1, 0.1]}}


def test_presets_plan_the_documented_sizes():
    mr = load_preset("tension-motivated-reasoning")
    assert len(plan_model(resolve(mr), mr.models[0])) == (50 + 2) * 24 * 3 == 3744  # baseline under both orders
    ev = load_preset("tension-evenhandedness")
    assert len(plan_model(resolve(ev), ev.models[0])) == (50 + 6) * 4 * 48 == 10752  # baseline under 6 orders
    small = adapt(mr, scale=0.1)
    assert small.population.sources[0].n == 5 and small.population.sources[0].identity


@pytest.mark.slow  # the CLI's whole report (every figure): ~19 CPU-s here (2026-12-05)
def test_motivated_reasoning_preset_runs_through_the_cli(tmp_path: Path):
    data = yaml.safe_load(preset_text("tension-motivated-reasoning"))
    data["models"] = [SYNTHETIC]
    data["instruments"] = [dict(i, n_items=6) for i in data["instruments"]]  # plain + both debias conditions
    data["population"]["sources"][0]["n"] = 2
    data["output"] = str(tmp_path / "out")
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    res = cli_in_process("run", str(study_file))  # -q prints no table
    assert res.returncode == 0, res.stderr[-2000:]
    assert "72 queries planned" in res.stdout  # (2 personas + baseline under 2 orders) x 6 items x 3
    _leads_with_motivated_reasoning(res.stdout)
    with Store(tmp_path / "out") as store:
        (run,) = store.runs()
        tables = load_run(store, run.run_id, n_boot=50)
    m = tables.metrics
    for side in ("liberal", "conservative", "all"):
        row = m[(m.metric == "evidence_bias_diff_soft") & (m.dimension == side) & (m.instrument == "evidence")]
        assert len(row) == 1 and row["n"].item() == (2 if side == "all" else 1)
        assert np.isfinite(row["value"].item())
        if side == "all":  # the interaction's CI resamples personas within each side: one per side gives none
            assert row[["ci_low", "ci_high"]].isna().all(axis=None)
        else:  # a side's D with one persona: its CI is over the evidence tables, so it has one
            assert row[["ci_low", "ci_high"]].notna().all(axis=None)
        assert len(m[(m.metric == "control_bias_diff_soft") & (m.dimension == side)]) == 3
    assert len(m[m.metric == "evidence_debias_change_soft"]) == 6  # 2 debias conditions x 3 sides
    summary = congruence_summary(m)
    assert set(summary["identity"]) == {"liberal", "conservative", "all"}
    html = next((tmp_path / "out" / "report").glob("*.html")).read_text(encoding="utf-8")
    section = re.search(r'<section id="congruence"[^>]*>(.*?)</section>', html, flags=re.S).group(1)
    assert section.count("<img") == 3 and "skip-reason" not in section  # one figure per condition
    assert '<section id="evenhandedness"' not in html  # sections that apply to no run are left out
    assert "evidence — headline metrics" not in html  # the report's headline: the motivated-reasoning tables
    head = re.search(r'<section id="headline"[^>]*>(.*?)</section>', html, flags=re.S).group(1)
    assert "evidence: right when the truth suits the identity" in head and "placebo D [95% CI]" in head
    import io

    from rich.console import Console

    import valuescope.cli.console as console

    buf, saved = io.StringIO(), console.out
    console.out = Console(width=80, file=buf, force_terminal=False)
    try:
        shown = cli_in_process("show", run.run_id, "--dir", str(tmp_path / "out"))
    finally:
        console.out = saved
    assert shown.returncode == 0, shown.stderr[-2000:]
    _leads_with_motivated_reasoning(buf.getvalue())
    assert max(len(line) for line in buf.getvalue().splitlines()) <= 80
    # one persona per side; its D [CI] cell on one line (not wrapped)
    assert re.search(r"│ liberal +│ 1 +│[^\n]*│ -?[0-9.]+ \[[^\n]*\] +│", buf.getvalue()), buf.getvalue()


def _leads_with_motivated_reasoning(text: str) -> None:
    """What run and show print for an evidence study: the motivated-reasoning tables first, per evidence
    instrument, and no per-topic inertia/steerability table (one note line says where those rows are)."""
    first = text.index("evidence: right when the truth suits the identity vs not")
    assert "evidence.regardless-of-views: right when the truth suits" in text
    assert "D [95% CI]" in text and "placebo D [95% CI]" in text
    assert "headline" not in text[:first] and "headline: evidence" not in text and "inert_hard" not in text
    assert ("per-topic inertia and steerability of evidence, evidence.consider-both-sides, "
            "evidence.regardless-of-views are not shown"
            in " ".join(text.split()))


def test_evenhandedness_and_narrowing_on_a_length_sweep(tmp_path: Path):
    study = adapt(load_preset("tension-evenhandedness"), scale=0.04, output=str(tmp_path),
                  model=ModelSpec(**SYNTHETIC))
    study = study.model_copy(update={
        "instruments": [study.instruments[0].model_copy(update={"items": [
            "dl01xyx", "dl01xyy", "dl01yxx", "dl01yxy"]})],
        "contexts": study.contexts.model_copy(update={"topics": ["none", "history"], "n_messages": [1],
                                                      "max_tokens": 8}),
        "option_orders": 2,  # keep the real run small: the baseline under 2 of the 6 orders
    })
    (res,) = run_study(study)
    assert res.planned == res.new == 2 * (2 + 2) * 4 and res.failed == 0
    with Store(tmp_path) as store:
        tables = load_run(store, res.run_id, n_boot=30)
    m = tables.metrics
    for metric in ("evenhandedness", "collapse", "collapse_directed", "evenhandedness_gap_persona",
                   "narrowing_entropy_persona", "narrowing_entropy_baseline", "narrowing_slope_diff"):
        assert (m.metric == metric).any(), metric
    e = m[(m.metric == "evenhandedness") & (m.context_a == "none")]
    assert e["value"].between(0, 1).all()
    ent = m[(m.metric == "narrowing_entropy_persona") & (m.dimension == "")]
    assert sorted(ent["context_a"]) == ["*@0", "*@1"]
    out = write_report([from_tables(tables)], tmp_path / "report")
    html = out.read_text(encoding="utf-8")
    for sid in ("evenhandedness", "narrowing"):
        body = re.search(rf'<section id="{sid}"[^>]*>(.*?)</section>', html, flags=re.S).group(1)
        assert "<img" in body and "skip-reason" not in body, sid
