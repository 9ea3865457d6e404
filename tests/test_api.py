"""The public Python API (valuescope.run / load / open / Study / Run / figures / errors) on runs of the synthetic
known-truth model (the API does not depend on which model answered; docs/python.md's code runs here, on the
synthetic model too), its errors against the CLI's one-line messages."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import cli_in_process
from matplotlib.figure import Figure

import valuescope

REPO = Path(__file__).resolve().parents[1]
ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY", "MATH"]
SMALL = {
    "name": "apismall",
    "instruments": [{"name": "mfq30", "items": ITEMS}],
    "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 3, "seeds": [111]}]},
    "models": [{"name": "truth", "backend": "synthetic",
                "synthetic": {"query_sd": 0.5, "letter_weight": 0.3, "letter_bias": [0.1, 0.1, 0.4, 0.2, 0.1, 0.1]}}],
    "option_order": "permute-persona",  # one order per condition: the counts below; `fixed` is the other run
}


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args: str) -> _Result:
    """The CLI in-process (no interpreter start-up per call): exit code, stdout and stderr apart."""
    res = cli_in_process(*args)
    return _Result(res.returncode, res.stdout, res.stderr)


def cli_error(res: _Result) -> str:
    """The CLI's one error line without the 'error: ' prefix (and nothing on stdout)."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two runs of the synthetic model in one store: permuted and fixed option order."""
    out = tmp_path_factory.mktemp("api") / "results"
    study = valuescope.Study(**SMALL, output=str(out))
    (a,) = valuescope.run(study, report=False, progress=False)
    (b,) = valuescope.run(study.replace(option_order="fixed"), report=False, progress=False)
    return out, a, b


def test_public_names_are_documented():
    assert set(valuescope.__all__) == {"__version__", *valuescope._EXPORTS, *valuescope._SUBMODULES}
    for name in valuescope.__all__:
        obj = getattr(valuescope, name)
        if name != "__version__":
            assert (obj.__doc__ or "").strip(), name
    assert "valuescope.output.api" not in (REPO / "docs" / "python.md").read_text()  # no private module in the docs


def test_errors_are_one_family():
    for cls in (valuescope.SpecError, valuescope.StoreError, valuescope.BackendError, valuescope.FigureError):
        assert issubclass(cls, valuescope.ValuescopeError)
    assert issubclass(valuescope.SpecError, ValueError) and issubclass(valuescope.StoreError, RuntimeError)
    from valuescope.study.spec import SpecError

    assert valuescope.SpecError is SpecError


def test_run_returns_runs_with_the_export_tables(store, tmp_path):
    out, a, b = store
    assert isinstance(a, valuescope.Run) and a.run_id != b.run_id and a.model == "truth"
    assert a.result is not None and a.result.new == a.result.planned == 24
    c = a.counts
    assert (c["planned"], c["answered"], c["failed"], c["personas"], c["baseline"]) == (24, 24, 0, 3, True)
    assert len(a.responses) == 24 and set(a.responses["item_id"]) == set(ITEMS)
    assert {"p_1", "p_5", "argmax", "expected", "valid", "raw", "key"} <= set(a.responses.columns)
    # the same columns and values as `valuescope export`
    res = cli("export", a.run_id, "--dir", str(out), "--out", str(tmp_path / "exp"))
    assert res.returncode == 0, res.stderr
    for name in ("responses", "scores", "metrics", "effects"):
        df = getattr(a, name)
        assert isinstance(df, pd.DataFrame) and len(df), name
        exported = pd.read_parquet(tmp_path / "exp" / f"{name}.parquet")
        assert list(exported.columns) == list(df.columns), name
        assert len(exported) == len(df), name
    assert a.headline["inertia_soft"].notna().any()
    written = a.export(tmp_path / "exp2")
    assert sorted(p.name for p in written) == sorted(f"{n}.{e}" for n in ("responses", "scores", "metrics", "effects")
                                                     for e in ("csv", "parquet"))


def test_run_resumes_and_accepts_dicts_paths_and_model_strings(store, tmp_path, capfd):
    out, a, _ = store
    capfd.readouterr()
    (again,) = valuescope.run({**SMALL, "output": str(out)}, report=False, progress=False)
    assert again.run_id == a.run_id and again.result.new == 0 and again.result.already_done == 24
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "output": str(out)}))
    (by_path,) = valuescope.run(path, model=SMALL["models"][0], report=False, progress=False)
    assert by_path.run_id == a.run_id and by_path.result.new == 0
    # a --model string: the synthetic model's short form is a model of another name (and spec), so another run
    (short,) = valuescope.run(path, model="synthetic", report=False, progress=False, scale=0.5)
    assert short.model == "synthetic" and short.run_id != a.run_id and short.result.new == 18  # (2 + 1) x 6
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # progress=False is silent


def test_load_open_and_prefixes(store):
    out, a, b = store
    run = valuescope.load(a.run_id[:-3], dir=out)
    assert run.run_id == a.run_id and run.responses.equals(a.responses)
    results = valuescope.open(out)
    assert {a.run_id, b.run_id} <= set(results.run_ids)
    assert len(results) == len(results.table()) >= 2
    assert results[b.run_id].run_id == b.run_id and results.load(b.run_id).model == b.model
    assert {r.run_id for r in results} == set(results.run_ids)
    ls = cli("ls", str(out), "--json")
    assert ls.returncode == 0, ls.stderr
    assert [r["run_id"] for r in json.loads(ls.stdout)] == results.run_ids
    # a directory with stores below it, like `valuescope ls`
    assert valuescope.open(out.parent).run_ids == results.run_ids


def test_errors_match_the_cli(store, tmp_path):
    out, a, _ = store
    with pytest.raises(valuescope.StoreError) as exc:
        valuescope.load("no-such-run", dir=out)
    assert str(exc.value) == cli_error(cli("show", "no-such-run", "--dir", str(out)))
    assert "no run 'no-such-run'" in str(exc.value) and a.run_id in str(exc.value)
    with pytest.raises(valuescope.StoreError) as exc:
        valuescope.load(a.run_id, dir=tmp_path / "empty")
    assert str(exc.value) == cli_error(cli("show", a.run_id, "--dir", str(tmp_path / "empty")))
    with pytest.raises(valuescope.StoreError) as exc:
        valuescope.open(tmp_path / "empty")
    assert str(exc.value) == cli_error(cli("ls", str(tmp_path / "empty")))
    # a bad study file: the very line the CLI prints
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"repeats": 0}))
    with pytest.raises(valuescope.SpecError) as exc:
        valuescope.run(bad, progress=False)
    assert str(exc.value) == cli_error(cli("run", str(bad)))
    # the same mistake in Python: the same message, naming "study" instead of the file
    with pytest.raises(valuescope.SpecError) as exc:
        valuescope.Study(repeats=0)
    assert str(exc.value) == cli_error(cli("run", str(bad))).replace(str(bad), "study")
    with pytest.raises(valuescope.SpecError, match=r"^study: field 'nmae': unknown key$"):
        valuescope.Study(nmae="x")
    with pytest.raises(valuescope.SpecError, match=r"field 'population.sources.0.wvs.n'"):
        valuescope.Study(population={"sources": [{"kind": "wvs", "n": "ten"}]})
    with pytest.raises(valuescope.SpecError, match=r"^model: field 'backend'"):
        valuescope.ModelSpec(backend="telepathy")
    with pytest.raises(valuescope.SpecError) as exc:
        valuescope.run("no-such-preset", progress=False)
    assert str(exc.value) == cli_error(cli("run", "--preset", "no-such-preset"))
    with pytest.raises(valuescope.SpecError) as exc:
        valuescope.preset("no-such-preset")
    assert str(exc.value) == cli_error(cli("presets", "show", "no-such-preset"))
    with pytest.raises(valuescope.SpecError) as exc:
        valuescope.run(SMALL, model="hf:", progress=False)
    assert str(exc.value).removeprefix("model") == cli_error(cli("run", "--model", "hf:")).removeprefix("--model")


def test_study_objects():
    study = valuescope.Study(**SMALL)
    assert isinstance(study, valuescope.Study) and study.instruments[0].items == ITEMS
    changed = study.replace(repeats=2, models=[valuescope.ModelSpec(name="other")])
    assert changed.repeats == 2 and changed.models[0].name == "other" and study.repeats == 1
    with pytest.raises(valuescope.SpecError, match="field 'repeats'"):
        study.replace(repeats=-1)
    demo = valuescope.preset("demo")
    from valuescope.study.identity import fingerprint
    from valuescope.study.presets import load_preset

    assert fingerprint(demo) == fingerprint(load_preset("demo"))


def test_compare_and_report(store, tmp_path):
    out, a, b = store
    table = a.compare(b)
    metrics = list(table.columns.get_level_values("metric").unique())
    assert {"inertia_soft", "inertia_hard", "steerability_jsd_soft", "top1_share_hard"} <= set(metrics)
    assert not any(m.endswith(("_low", "_high")) or m == "n" for m in metrics)
    assert set(table.columns.get_level_values("run")) == {a.run_id, b.run_id}  # same model: labelled by run
    head_a = a.headline.set_index(["instrument", "context", "dimension"])["inertia_soft"]
    got = table[("inertia_soft", a.run_id)].reindex(head_a.index)
    pd.testing.assert_series_equal(got, head_a, check_names=False)
    assert valuescope.compare([a, b]).equals(table)
    diff = a.difference(b)  # A, B and A - B with intervals (the MOVER arithmetic: test_view_uncertainty)
    row = diff[(diff.metric == "inertia_hard")].iloc[0]
    got_a = a.metrics[(a.metrics.metric == "inertia_hard") & (a.metrics.dimension == row.dimension)].iloc[0]
    assert (row.a, row.a_low, row.a_high) == (got_a.value, got_a.ci_low, got_a.ci_high)
    assert row["diff"] == pytest.approx(row.a - row.b) and row.diff_low <= row["diff"] <= row.diff_high
    html = a.report(tmp_path / "rep", compare=[b])
    assert html.name == f"{a.run_id}_vs_{b.run_id}.html" and html.is_file()
    text = html.read_text()
    assert a.run_id in text and b.run_id in text
    with pytest.raises(TypeError):
        a.compare("not a run")


def test_figures_cover_the_report(store):
    from valuescope.output.report.render import SPECS

    assert set(valuescope.output.figures.NAMES) == {s.id for s in SPECS}
    assert {"inertia", "macro", "micro", "effects", "pca", "convergence", "variance", "stability", "length"} <= set(
        valuescope.output.figures.NAMES)
    for name in valuescope.output.figures.NAMES:  # every report section is a documented function here
        fn = getattr(valuescope.output.figures, name)
        assert callable(fn) and fn.__name__ == name and (fn.__doc__ or "").strip()
    _, a, b = store
    drawn, skipped = {}, {}
    for name in valuescope.output.figures.NAMES:
        try:
            drawn[name] = valuescope.output.figures.figure(name, a)
        except valuescope.FigureError as exc:
            skipped[name] = str(exc)
    assert {"inertia", "macro", "micro"} <= set(drawn)  # 3 personas: too few for a Cohen's d grid (skipped, says why)
    assert all(isinstance(f, Figure) and f.axes for f in drawn.values())
    # one context only: the context figures say why, in one line
    assert set(skipped) >= {"stability", "length"} and all("\n" not in m for m in skipped.values())
    assert all(msg.startswith(f"{name}: ") for name, msg in skipped.items())
    both = valuescope.output.figures.inertia([a, b], instrument="mfq30")
    assert isinstance(both, Figure)
    with pytest.raises(valuescope.FigureError, match="no figure for instrument 'pvq40'"):
        valuescope.output.figures.macro(a, instrument="pvq40")
    with pytest.raises(valuescope.FigureError, match="unknown figure"):
        valuescope.output.figures.figure("nope", a)
    with pytest.raises(TypeError, match="one run"):
        valuescope.output.figures.macro([a, b])


def test_metrics_are_computed_once_per_stored_answers(store, tmp_path, monkeypatch):
    """A run read twice in one process (``run`` then ``show``, two Run objects) computes its metrics once: the
    second read is the first's table, equal to a computation of its own; an answer deleted is computed anew."""
    import contextlib
    import sqlite3

    from valuescope.analysis import tables as tables_module
    from valuescope.output.operations import store_file

    _, a, _ = store
    expected = a.metrics, a.effects  # computed on the fixture's store (before the count starts), not the one below
    computed = []
    real = tables_module.metric_table
    monkeypatch.setattr(tables_module, "metric_table", lambda inputs: computed.append(inputs.run_id) or real(inputs))
    # the same run in a store of its own (the memo is per store): the same answers, nothing of it computed yet
    (own,) = valuescope.run({**SMALL, "output": str(tmp_path / "own")}, report=False, progress=False)
    assert own.run_id == a.run_id and computed == []
    first = valuescope.load(a.run_id, dir=own.store_dir)
    first.metrics.loc[:, "value"] = -1.0  # a reader changing its table changes no other reader's
    again = valuescope.load(a.run_id, dir=own.store_dir)
    assert computed == [a.run_id]
    pd.testing.assert_frame_equal(again.metrics, expected[0])
    pd.testing.assert_frame_equal(again.effects, expected[1])
    with contextlib.closing(sqlite3.connect(store_file(own.store_dir))) as db, db:
        db.execute("DELETE FROM responses WHERE run_id = ? AND item_id = 'EMOTIONALLY'", (a.run_id,))
    fewer = valuescope.load(a.run_id, dir=own.store_dir)
    assert (computed, fewer.counts["answered"]) == ([a.run_id, a.run_id], 20)
    assert not fewer.metrics.equals(expected[0])


def test_summary_is_strict_json(store):
    _, a, _ = store
    s = a.summary()
    text = json.dumps(s, allow_nan=False)
    back = json.loads(text)
    assert back["run_id"] == a.run_id and back["counts"]["answered"] == 24
    assert back["session"]["new"] == 24 and back["report"] == (str(a.report_path) if a.report_path else None)
    assert {"dimension", "inertia_soft", "steerability_jsd_soft"} <= set(back["headline"][0])


def test_cli_json(store, tmp_path):
    out, a, _ = store
    show = cli("show", a.run_id, "--dir", str(out), "--json")
    assert show.returncode == 0, show.stderr
    data = json.loads(show.stdout)
    assert data["run_id"] == a.run_id and data["counts"]["planned"] == 24 and "metrics" not in data
    assert data["headline"] == json.loads(json.dumps(a.summary()["headline"]))
    full = json.loads(cli("show", a.run_id[:-3], "--dir", str(out), "--json", "--all").stdout)
    assert len(full["metrics"]) == len(a.metrics)
    _, _, b = store
    pair = json.loads(cli("show", a.run_id, b.run_id, "--dir", str(out), "--json").stdout)
    assert [r["run_id"] for r in pair["runs"]] == [a.run_id, b.run_id]
    ablation = a.ablation(b)  # option order differs: not one of the papers' ablation pairs, and it says why
    assert pair["comparison"] == json.loads(ablation.to_json(orient="records"))
    assert list(ablation["comparison"]) == ["none"] and ablation["note"].iloc[0]
    from valuescope.study.presets import list_presets

    presets = json.loads(cli("presets", "--json").stdout)
    assert presets == [{"name": n, "description": d} for n, d in list_presets()]
    assert {p["name"] for p in presets} >= {"demo", "inertia", "stability"}
    one = json.loads(cli("presets", "show", "demo", "--json").stdout)
    assert one["name"] == "demo" and one["study"]["population"]["sources"][0]["n"] == 12
    assert yaml.safe_load(one["yaml"])["name"] == "demo"
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({**SMALL, "output": str(out)}))
    run = cli("run", str(study), "--json")  # resumes: nothing new, report written (in-process: the entry point
    # as a process is test_hostile's)
    assert run.returncode == 0, run.stderr
    (summary,) = json.loads(run.stdout)
    assert summary["run_id"] == a.run_id and summary["session"] == {
        **summary["session"], "planned": 24, "already_stored": 24, "new": 0, "failed": 0}
    assert Path(summary["report"]).is_file()
    # errors: nothing on stdout, one line on stderr, exit 2
    for args in (["show", "nope", "--dir", str(out), "--json"], ["ls", str(tmp_path / "none"), "--json"],
                 ["presets", "show", "nope", "--json"], ["run", str(tmp_path / "missing.yaml"), "--json"]):
        res = cli(*args)
        cli_error(res)
        assert res.stdout == "", args


def test_progress_bar_renders_a_bar():
    import io

    from rich.console import Console

    from valuescope.core.progress import ProgressBar

    buf = io.StringIO()
    bar = ProgressBar(Console(file=buf, force_terminal=True, width=100))
    bar("queries", 3, 10)
    bar.p.refresh()
    bar("queries", 10, 10)
    bar.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "queries" in text and "3/10" in text


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


@pytest.mark.slow  # two runs and the two-run report (every figure): ~16 CPU-s here (2026-12-05)
def test_docs_python_md_runs(tmp_path, monkeypatch, capsys):
    """docs/python.md's code blocks, as one script, in this process, with the demo preset pointed at the synthetic
    model (the page's code is what is checked; the embedded model runs end to end through ops.run_study, which
    valuescope.run calls, in test_report_real_run and test_cli::test_custom_instrument_real_run)."""
    blocks = python_blocks((REPO / "docs" / "python.md").read_text())
    assert len(blocks) >= 5
    script = tmp_path / "python_md.py"
    script.write_text("\n\n".join(blocks))
    preset = valuescope.preset
    monkeypatch.setattr(valuescope, "preset", lambda name: preset(name).replace(models=[SMALL["models"][0]]))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert out.startswith("truth 6 items")  # the page's study, on the synthetic model
    assert (tmp_path / "inertia.png").stat().st_size > 1000
    assert len(list((tmp_path / "report").glob("*_vs_*.html"))) == 1
    assert "StoreError: no run 'no-such-run'" in out and "SpecError: study: field 'repeats'" in out
