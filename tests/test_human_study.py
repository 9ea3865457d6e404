"""Issue 30 at the study level: a study declares the human comparison once (``human: {norms, attribute}``), the
metrics table then holds human_distance / political_gap rows, shown by ``run``/``show``, exported and reported;
``--model synthetic:NORMS.yaml`` builds a model that reproduces the norms file; the fidelity-political preset
without norms says in one line that it needs them. All on the synthetic backend (reduced preset scales)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import block, cli_in_process

from valuescope.study.files import SpecError
from valuescope.study.spec import ModelSpec, human_norms, load_study

ROOT = Path(__file__).parent.parent
NORMS = ROOT / "examples" / "human_gap.yaml"
HUMAN = ("human_distance", "human_distance_baseline", "political_gap_r", "political_gap_slope")


def _study_file(tmp_path: Path, human: str) -> Path:
    f = tmp_path / "study.yaml"
    f.write_text(f"name: s\nmodels: [{{name: syn, backend: synthetic}}]\n{human}\n")
    return f


def test_the_study_declares_the_comparison_once(tmp_path):
    """``human.norms`` is relative to the study file and checked when the study loads; every mistake is one
    line naming its field or file."""
    (tmp_path / "n.yaml").write_text(NORMS.read_text())
    study = load_study(_study_file(tmp_path, "human: {norms: n.yaml, attribute: identity}"))
    assert study.human is not None and study.human.norms == str((tmp_path / "n.yaml").resolve())
    assert human_norms(study, study.models[0]) == (study.human, "")
    for human, message in [
        ("human: {norms: missing.yaml}", "norms file not found"),
        ("human: {norm: n.yaml}", "human.norm"),
        ("human: {norms: bad.yaml}", "groups.a: every group needs a 'source'"),
        ("human: {attribute: ' '}", "human.attribute"),
    ]:
        (tmp_path / "bad.yaml").write_text("instrument: mfq30\nscale: x\ngroups: {a: {means: {Harm: 1}}}\n")
        with pytest.raises(SpecError, match=message) as err:
            load_study(_study_file(tmp_path, human))
        assert "\n" not in str(err.value)
    # no norms and a model not built from a norms file: no numbers, one line saying why
    bare = load_study(_study_file(tmp_path, "human: {attribute: identity}"))
    spec, note = human_norms(bare, bare.models[0])
    assert spec is None and "needs a norms file" in note and "ships no human numbers" in note
    # no norms named, a model built from a norms file: that file, and a note that says so
    spec, note = human_norms(bare, ModelSpec(name="gap", backend="synthetic", path=str(NORMS)))
    assert spec is not None and spec.norms == str(NORMS) and "built from" in note


@pytest.fixture(scope="module")
def norms_run(tmp_path_factory):
    """The issue's command as docs/human_norms.md gives it, at scale 0.1 (5 liberal + 5 conservative WVS personas
    + baseline x MFQ-30), run from the repository root (the command's path is relative to it)."""
    words = shlex.split(block("docs/human_norms.md", 4))
    assert words[:2] == ["valuescope", "run"] and f"synthetic:{NORMS.relative_to(ROOT)}" in words
    out = tmp_path_factory.mktemp("fidelity")
    res = cli_in_process(*words[1:], "--scale", "0.1", "-o", str(out), "--no-report", cwd=ROOT)
    return out, res


def test_preset_on_a_norms_model_shows_exports_and_reports_the_comparison(norms_run, tmp_path):
    out, res = norms_run
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("human comparison:") == 1 and "norms the synthetic model was built from" in res.stderr
    assert "distance of each persona group to its people" in res.stdout
    assert "the model's political gap against the people's" in res.stdout
    run_id = next(line.split(":")[0] for line in res.stdout.splitlines() if line.startswith("fidelity-political-"))
    exported = cli_in_process("export", run_id, "--dir", str(out), "-o", str(tmp_path / "x"))
    assert exported.returncode == 0, exported.stderr
    metrics = pd.read_csv(tmp_path / "x" / "metrics.csv", keep_default_na=False)
    rows = metrics[metrics["metric"].isin(HUMAN)]
    assert set(rows["metric"]) == set(HUMAN)
    assert set(rows.loc[rows["metric"] == "human_distance", "dimension"]) == {"liberal", "conservative"}
    gap = rows[rows["metric"] == "political_gap_slope"].iloc[0]
    assert gap["dimension"] == "conservative-liberal" and int(gap["n"]) == 10
    shown = cli_in_process("show", run_id, "--dir", str(out))
    assert "political gap" in shown.stdout

    # the report's section reads the same rows (only they are given: no figure is drawn, ~1 CPU-s)
    from valuescope.output.numbers import fmt_ci
    from valuescope.output.report import RunData, write_report

    html = write_report([RunData(run_id, "gap", metrics=rows.reset_index(drop=True))], tmp_path / "rep")
    text = html.read_text(encoding="utf-8")
    section = text[text.index('<section id="human">'):]
    section = section[:section.index("</section>")]
    assert "Personas and people" in section and "slope = ⟨model gap, human gap⟩" in section
    assert fmt_ci(float(gap["value"]), float(gap["ci_low"]), float(gap["ci_high"])) in section
    assert 'href="#human"' in text


def test_preset_without_norms_says_so_and_takes_them_on_a_later_run(tmp_path):
    """The preset on a model not built from norms: one line that it needs a norms file, a note row, no numbers.
    Run again with ``human.norms`` set (a run option: the same run, nothing asked again): the numbers appear."""
    from valuescope.analysis.tables import load_run
    from valuescope.execution.runner import run_study
    from valuescope.store.sqlite import Store
    from valuescope.study.presets import adapt, load_preset

    res = cli_in_process("run", "--preset", "fidelity-political", "--model", "synthetic", "--scale", "0.05",
                         "-o", str(tmp_path), "--no-report", "--quiet")
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if "norms file" in line]
    assert len(lines) == 1 and "needs a norms file" in lines[0]
    [run_id] = [r.run_id for r in Store(tmp_path).runs()]
    m = load_run(Store(tmp_path), run_id, n_boot=20).metrics
    why = m[m["metric"].isin(HUMAN)]
    assert len(why) == 1 and why["value"].isna().all() and "needs a norms file" in why["note"].iloc[0]
    study = adapt(load_preset("fidelity-political"), model=ModelSpec(name="synthetic", backend="synthetic"),
                  scale=0.05, output=str(tmp_path))
    [first] = run_study(study.model_copy(update={"human": study.human.model_copy(update={"norms": str(NORMS)})}))
    assert first.run_id == run_id and first.planned > 0 and first.new == 0 and not first.notes
    m = load_run(Store(tmp_path), first.run_id, n_boot=20).metrics
    assert set(m.loc[m["metric"].isin(HUMAN), "metric"]) == set(HUMAN)
    # the metrics memo (load_run, one process) keys a human comparison by its norms file's bytes: an edited file
    # is read anew, never a stale table (the slope is in units of the human gap: halving that gap doubles it)
    mine = tmp_path / "norms.yaml"
    mine.write_text(NORMS.read_text(encoding="utf-8"), encoding="utf-8")
    run_study(study.model_copy(update={"human": study.human.model_copy(update={"norms": str(mine)})}))

    def slope() -> float:
        m = load_run(Store(tmp_path), run_id, n_boot=20).metrics
        return float(m.loc[m["metric"] == "political_gap_slope", "value"].iloc[0])

    before = slope()
    assert slope() == before
    norms = yaml.safe_load(mine.read_text(encoding="utf-8"))
    lib, con = norms["groups"]["liberal"]["means"], norms["groups"]["conservative"]["means"]
    for d in con:
        con[d] = (lib[d] + con[d]) / 2
    mine.write_text(yaml.safe_dump(norms), encoding="utf-8")
    assert slope() == pytest.approx(2 * before, rel=1e-9)
