"""The HTML report: every figure present or skipped with a reason, model text escaped, two models
compared. A page in a real headless Chromium: test_report_real_run (the page of a real run of two models)."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from report_fixtures import SCRIPT, make_run

from valuescope.output.report import RunData, render, write_report
from valuescope.output.report import figures_answers as fa
from valuescope.output.report import figures_metrics as fm
from valuescope.output.report.derive import eta_squared, pca
from valuescope.output.report.render import SPECS

SECTION_IDS = [s.id for s in SPECS if not s.optional]  # optional sections: tests/test_tension*.py


@pytest.fixture(scope="module")
def runs() -> tuple[RunData, RunData]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy: t-tests on near-constant toy groups
        a = make_run(
            "run-a",
            "smollm2-135m",
            seed=1,
            script=True,
            reduced="preset 'inertia' at --scale 0.1 (14 of 200 personas)",
        )
        b = make_run("run-b", "qwen2.5-0.5b-instruct", seed=2, sharp=0.6, steer=1.6)
    return a, b


@pytest.fixture(scope="module")
def report_a(runs, tmp_path_factory) -> Path:
    """Run a's report, written once and read by every test that only looks at it (one render: seconds)."""
    return write_report([runs[0]], tmp_path_factory.mktemp("report_a"))


@pytest.fixture(scope="module")
def report_ab(runs, tmp_path_factory) -> Path:
    """The two runs' comparison report, written once. What it is read for (the inertia comparison, the headline
    table, each model's counts) is drawn from the headline's metric rows and the counts: the runs are cut to those
    (every other figure of two runs, drawn twice, made it ~30 CPU-s). Whole two-model pages: test_report_real_run
    (in Chromium too), test_api::test_compare_and_report."""
    headline = ("inertia", "steerability", "top1_share")
    cut = [replace(r, responses=pd.DataFrame(), scores=pd.DataFrame(), effects=pd.DataFrame(),
                   metrics=r.metrics[r.metrics["metric"].str.startswith(headline)]) for r in runs]
    return write_report(cut, tmp_path_factory.mktemp("report_ab"))


def _sections(html: str) -> dict[str, str]:
    parts = re.findall(r'<section id="([^"]+)"[^>]*>(.*?)</section>', html, flags=re.S)
    return dict(parts)


def _degraded(run: RunData) -> RunData:
    """One context, one repeat, no metrics, no effects, and a persona id that looks like TeX."""
    r = run.responses
    r = r[(r["context"] == "none") & (r["repeat"] == 0)].copy()
    r["persona_id"] = r["persona_id"].replace({"wvs111-000": "costs $x^2$ \\frac{1}{2}"})
    s = run.scores[(run.scores["context"] == "none") & (run.scores["repeat"] == 0)]
    return RunData(
        run_id="run-d",
        model="tiny-model",
        study={"name": "degraded"},
        responses=r,
        scores=s,
        example_prompt="Q?",
        counts={},
    )


def test_every_section_drawn_from_full_data(report_a: Path) -> None:
    html_path, folder = report_a, report_a.parent
    html = html_path.read_text(encoding="utf-8")
    sections = _sections(html)
    for sid in SECTION_IDS:
        body = sections[sid]
        imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', body)
        assert imgs, f"section {sid} has no figure: {re.findall(r'Skipped[^<]*', body)}"
        assert "skip-reason" not in body, f"section {sid}: {re.findall(r'Skipped[^<]*', body)}"
        hrefs = re.findall(r'<a href="([^"/]+-figures/[^"]+\.png)"', body)
        assert len(hrefs) == len(imgs)
        for href in hrefs:
            assert (folder / href).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one figure per instrument for per-instrument sections
    assert len(re.findall(r"<img ", sections["micro"])) == 2
    for fixed in ("Overview", "Headline metrics", "The exact prompt of one query", "Study settings"):
        assert fixed in html
    assert "Reduced scale" in html and "--scale 0.1" in html
    assert "queries" in html and "invalid answers" in html and "outside the option letters" in html
    assert 'id="' + "toc" not in html or "Contents" in html


def test_missing_data_skips_with_reason(runs, tmp_path: Path) -> None:
    html = write_report([_degraded(runs[0])], tmp_path).read_text(encoding="utf-8")
    sections = _sections(html)
    expect_skip = {
        "inertia": "no metrics table",
        "effects": "no effects table",
        "stability": "no rank_order / ipsative",
        "length": "not swept",
        "variance": "no variance rows",  # read from the metrics table only, never re-estimated
        "convergence": "no convergence_var rows",
    }
    for sid, reason in expect_skip.items():
        body = sections[sid]
        assert "<img" not in body
        notes = re.findall(r'<p class="note skip-reason">(.*?)</p>', body, flags=re.S)
        assert len(notes) == 1 and reason in notes[0], (sid, notes)
    for sid in set(SECTION_IDS) - set(expect_skip):  # computed from the answers themselves
        assert "<img" in sections[sid], sid
    assert "Skipped: no metrics table was given" in sections["headline"]
    assert "(skipped)" in html  # marked in the table of contents


def test_minimal_metrics_columns_still_draw(runs, tmp_path: Path) -> None:
    """A metrics table with only the essential columns (no CIs, no contexts, no notes) still gives the
    inertia comparison (bars without whiskers), and convergence_var rows are drawn as given. The run holds its
    metrics table only: the figures drawn from the answers are test_missing_data_skips_with_reason's."""
    run = RunData("run-d", "tiny-model")
    inertia = runs[0].metrics[runs[0].metrics["metric"] == "inertia_hard"]
    conv = pd.DataFrame(
        {
            "instrument": "mfq30",
            "metric": "convergence_var",
            "dimension": "harm",
            "n": [10, 20, 40],
            "value": [0.4, 0.2, 0.1],
        }
    )
    run.metrics = pd.concat(
        [inertia[["instrument", "metric", "dimension", "value"]], conv], ignore_index=True
    )
    html = write_report([run], tmp_path).read_text(encoding="utf-8")
    sections = _sections(html)
    assert "<img" in sections["inertia"] and "skip-reason" not in sections["inertia"]
    assert len(re.findall(r"<img ", sections["convergence"])) == 1  # only the instrument the rows cover
    [(label, fig)] = fa.convergence_fig(render._normalise(run))
    ax = fig.axes[0]
    assert label == "mfq30" and [t.get_text() for t in ax.get_legend().get_texts()] == ["harm"]
    assert list(ax.lines[0].get_ydata()) == [0.4, 0.2, 0.1]


def test_reports_are_named_by_runs_and_do_not_go_stale(runs, tmp_path: Path) -> None:
    """-o x.html names a file; a directory gets <run ids>.html; a rewrite leaves no figure of the earlier
    write behind, and another run's report in the same directory is not overwritten."""
    from valuescope.output.report.render import report_path

    assert report_path(tmp_path / "x.html", ["a"]) == tmp_path / "x.html"
    assert report_path(tmp_path, ["r 1", "r2"]) == tmp_path / "r-1_vs_r2.html"
    assert len(report_path(tmp_path, [f"run-{i:03d}-" + "x" * 40 for i in range(9)]).name) <= 125
    # naming and stale figures do not depend on what the page shows: each run cut to its inertia and
    # convergence rows (4 figures, ~2 CPU-s a page instead of ~13 for the full page, written 5 times here)
    keep = ["inertia_hard", "inertia_soft", "convergence_var"]
    a, b = (RunData(r.run_id, r.model, metrics=r.metrics[r.metrics["metric"].isin(keep)]) for r in runs)
    named = write_report([a], tmp_path / "seedpair.html")
    assert named == tmp_path / "seedpair.html" and named.is_file()
    assert (tmp_path / "seedpair-figures").is_dir()
    pa = write_report([a], tmp_path / "rep")
    pb = write_report([b], tmp_path / "rep")
    assert pa != pb and pa.is_file() and pb.is_file() and pa.name == f"{a.run_id}.html"
    stale = tmp_path / "rep" / f"{a.run_id}-figures" / "gone-section.png"
    stale.write_bytes(b"old")
    write_report([a], tmp_path / "rep")
    assert not stale.exists()
    linked = set(re.findall(r'<a href="([^"]+\.png)"', pa.read_text(encoding="utf-8")))
    on_disk = {f"{a.run_id}-figures/{p.name}" for p in (tmp_path / "rep" / f"{a.run_id}-figures").glob("*.png")}
    assert linked == on_disk and len(linked) == 4


def test_model_text_is_escaped(runs, report_a: Path) -> None:
    run = runs[0]
    assert SCRIPT in run.responses["raw"].dropna().iloc[0]
    assert any(SCRIPT in t for t in run.persona_texts.values())
    html = report_a.read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # the page has no script of its own either
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    examples = _sections(html)["examples"]
    # raw answer, persona description, conversation message, example prompt
    assert examples.count(escaped) >= 4
    raw_cells = re.findall(r'<td class="text">(.*?)</td>', examples, flags=re.S)
    assert any(escaped in c and c.startswith("Sure!") for c in raw_cells)


def test_two_runs_compare_models(runs, report_ab: Path) -> None:
    a, b = runs
    html = report_ab.read_text(encoding="utf-8")
    inertia = _sections(html)["inertia"]
    assert len(re.findall(r"<img ", inertia)) == 2  # one comparison figure per instrument, not per model
    # the comparison figure itself carries both models: legend entries and one bar group per model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figs = fm.inertia_steerability([a, b])
    for _inst, fig in figs:
        legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        assert legend == [a.model, b.model]
        for ax in fig.axes:
            bars = [c for c in ax.containers if isinstance(c, BarContainer)]
            assert [c.get_label() for c in bars] == [a.model, b.model]
    headline = _sections(html)["headline"]
    assert a.model in headline and b.model in headline
    assert "<th>model</th>" in headline
    overview = _sections(html)["overview"]
    assert f"Counts — {a.model}" in overview and f"Counts — {b.model}" in overview


def test_derived_numbers_hand_computed() -> None:
    # eta^2: totals 5, group means 1.5 / 3.5 around 2.5 -> between 4 -> 0.8
    assert eta_squared(np.array([1.0, 2, 3, 4]), pd.Series(list("aabb"))) == pytest.approx(0.8)
    # rank-one profiles: PC1 carries all the variance
    m = pd.DataFrame(np.outer([1.0, 2, 3, 4], [1.0, -2, 0.5]), columns=list("xyz"))
    _, ratio, load = pca(m)
    assert ratio[0] == pytest.approx(1.0) and abs(load[1, 0]) == pytest.approx(2 / np.sqrt(5.25))


def test_report_reads_its_numbers_from_the_metrics_table(runs, report_a: Path) -> None:
    """The variance and convergence figures draw the metrics table's rows, nothing re-estimated: change
    the rows and the bars move."""
    run = runs[0]
    [(inst, fig)] = [x for x in fa.variance_fig(render._normalise(run)) if x[0] == "mfq30"]
    m = run.metrics
    rows = m[(m.instrument == "mfq30") & (m.context_a == "none") & (m.metric == "var_persona")]
    bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars][2] == "between personas"
    heights = [b.get_height() for b in bars[2]]
    expect = rows.set_index("dimension")["value"].sort_index().to_numpy()
    assert np.allclose(np.nan_to_num(heights), np.nan_to_num(expect))
    doubled = m.copy()
    doubled.loc[doubled.metric == "var_persona", "value"] *= 2
    [(_, fig2)] = [x for x in fa.variance_fig(render._normalise(RunData(run.run_id, run.model, metrics=doubled)))
                   if x[0] == "mfq30"]
    bars2 = [c for c in fig2.axes[0].containers if isinstance(c, BarContainer)]
    assert np.allclose(np.nan_to_num([b.get_height() for b in bars2[2]]), np.nan_to_num(2 * expect))
    # position bias is the first section, read from the metrics table
    html = report_a.read_text(encoding="utf-8")
    assert html.index('id="position"') < html.index('id="overview"') < html.index('id="headline"')
    pb = m[(m.metric == "position_bias_soft") & (m.instrument == "mfq30")].iloc[0]
    # this fixture asks every respondent under one order: not identified, and the report says why
    assert np.isnan(pb["value"]) and pb["note"] in _sections(html)["position"]
