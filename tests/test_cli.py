"""The CLI as a user meets it: validation errors, a run, resume, ls/show/export (on the synthetic known-truth
model: none of it depends on which model answers), and a user's own instrument through a real run of the
embedded model."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import cli_at_width
from helpers import cli_in_process as vs

SMALL = {
    "name": "small",
    "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT",
                                                "DECENCY", "MATH"]}],
    "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 3, "seeds": [111]}]},
    "models": [{"name": "truth", "backend": "synthetic",
                "synthetic": {"query_sd": 0.5, "letter_weight": 0.3, "letter_bias": [0.1, 0.1, 0.4, 0.2, 0.1, 0.1]}}],
    "option_order": "permute-persona",  # one order per condition: the counts below
}


def vs_process(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "valuescope", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)




def write_study(tmp_path: Path, data: dict, name: str = "study.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"nmae": "x"}, "field 'nmae': unknown key"),
        ({"repeats": "many"}, "field 'repeats'"),
        ({"repeats": 0}, "field 'repeats'"),
        ({"models": []}, "field 'models'"),
        ({"option_order": "sideways"}, "field 'option_order'"),
        ({"population": {"sources": [{"kind": "wvs", "n": "ten"}]}}, "population.sources.0.wvs.n"),
        ({"models": [{"backend": "telepathy"}]}, "models.0.backend"),
        ({"models": [{"api_key_env": "sk-live-123"}]}, "models.0.api_key_env"),
        ({"instruments": [{"name": "mfq30", "path": "x.yaml"}]}, "exactly one of 'name' or 'path'"),
        (["a", "list"], "must be a mapping"),
    ],
)
def test_bad_study_gives_one_line_and_exit_2(tmp_path, data, needle):
    res = vs("run", str(write_study(tmp_path, data)), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert needle in lines[0] and "Traceback" not in res.stderr


def test_missing_and_malformed_files(tmp_path):
    res = vs("run", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert res.returncode == 2 and "study file not found" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    res = vs("run", str(bad), cwd=tmp_path)
    assert res.returncode == 2 and "invalid YAML" in res.stderr
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00")
    res = vs("run", str(binary), cwd=tmp_path)
    assert res.returncode == 2 and "not UTF-8" in res.stderr
    res = vs("run", str(write_study(tmp_path, {"instruments": [{"name": "no_such_thing"}]})), cwd=tmp_path)
    assert res.returncode == 2 and "no_such_thing" in res.stderr


def test_run_resume_show_export(tmp_path):
    study = write_study(tmp_path, {**SMALL, "output": str(tmp_path / "out")})
    first = vs("run", str(study), "--no-report", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "24 queries planned, 0 already stored, 24 new" in first.stdout
    assert "inert_hard" not in first.stdout  # -q: one line per run, no tables
    store = tmp_path / "out" / "valuescope.sqlite"
    con = sqlite3.connect(store)
    rows = con.execute("SELECT key, probs FROM responses").fetchall()
    assert len(rows) == 24 == len({k for k, _ in rows})
    con.close()
    again = vs("run", str(study), "--no-report", "-q", cwd=tmp_path)
    assert again.returncode == 0 and "24 already stored, 0 new" in again.stdout
    con = sqlite3.connect(store)
    assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 24
    con.close()

    listing = vs("ls", str(tmp_path / "out"))
    assert listing.returncode == 0 and "small-truth" in listing.stdout
    shown = vs("show", "small", "--dir", str(tmp_path / "out"))
    assert shown.returncode == 0, shown.stderr
    assert "answered=24/24" in shown.stdout
    # position bias comes first; every headline column names its reading
    assert shown.stdout.index("position bias") < shown.stdout.index("answered=24/24")
    assert "inert_hard" in shown.stdout and "inert_soft" in shown.stdout
    # the same study without the forced-choice sentence: an ablation pair, compared by `show A B`
    free = write_study(tmp_path, {**SMALL, "name": "free", "forced_choice": False, "output": str(tmp_path / "out")},
                       "free.yaml")
    assert vs("run", str(free), "--no-report", "-q", cwd=tmp_path).returncode == 0
    pair = vs("show", "small", "free", "--dir", str(tmp_path / "out"))
    assert pair.returncode == 0, pair.stderr
    assert "ablation pair (forced_free)" in pair.stdout and "forced_free_rho_hard" in pair.stdout
    assert "A − B" in pair.stdout  # the two runs' values and their difference, with intervals
    assert "paired" in pair.stdout  # the same personas in both runs: a paired bootstrap of A − B
    exported = vs("export", "small", "--dir", str(tmp_path / "out"), "--out", str(tmp_path / "exp"))
    assert exported.returncode == 0, exported.stderr
    resp = pd.read_parquet(tmp_path / "exp" / "responses.parquet")
    assert len(resp) == 24 and {"p_1", "p_6", "argmax", "expected", "attr_religious_denomination"} <= set(resp)
    assert pd.read_csv(tmp_path / "exp" / "responses.csv").shape[0] == 24
    assert (tmp_path / "exp" / "metrics.parquet").is_file()
    # metrics recomputed from the exported responses equal the exported (reported) ones
    from valuescope.analysis import metrics
    from valuescope.analysis.scoring import score_personas
    from valuescope.design.instruments import load_instrument

    scores = score_personas(resp, {"mfq30": load_instrument(name="mfq30")})
    again = metrics.compute_metrics(resp, scores, n_boot=200, seed=0)
    reported = pd.read_parquet(tmp_path / "exp" / "metrics.parquet")
    cols = ["metric", "dimension", "context_a", "context_b"]
    a = again.sort_values(cols).reset_index(drop=True)
    b = reported.sort_values(cols).reset_index(drop=True)
    assert len(a) == len(b) > 10
    for col in ("value", "ci_low", "ci_high"):
        pd.testing.assert_series_equal(a[col].astype(float), b[col].astype(float), check_names=False, rtol=1e-9)

    missing = vs("show", "nope", "--dir", str(tmp_path / "out"))
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr


def test_interrupted_run_resumes_without_gaps_or_duplicates(tmp_path):
    from valuescope.execution.runner import run_study
    from valuescope.study.spec import study_from_dict

    study = study_from_dict({**SMALL, "output": str(tmp_path / "out")})
    first = run_study(study, max_queries=7, chunk_size=6)[0]
    assert 0 < first.new < 24
    second = run_study(study)[0]
    assert second.already_done == first.new and second.new == 24 - first.new
    con = sqlite3.connect(tmp_path / "out" / "valuescope.sqlite")
    keys = [k for (k,) in con.execute("SELECT key FROM responses")]
    assert len(keys) == len(set(keys)) == 24


@pytest.mark.slow  # the embedded model in a subprocess
def test_custom_instrument_real_run(tmp_path):
    """Issue 3: a user's own instrument YAML goes through a real run on the embedded model."""
    repo = Path(__file__).resolve().parents[1]
    study = write_study(tmp_path, {
        "name": "custom", "output": str(tmp_path / "out"), "report": False,
        "instruments": [{"path": str(repo / "examples" / "my_instrument.yaml")}],
        "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 2, "seeds": [5]}]},
        "option_order": "permute-persona",
    })
    res = vs_process("run", str(study), "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "12 queries planned" in res.stdout  # 3 conditions x 4 items
    exported = vs("export", "custom", "--dir", str(tmp_path / "out"), "--out", str(tmp_path / "exp"))
    assert exported.returncode == 0, exported.stderr
    scores = pd.read_csv(tmp_path / "exp" / "scores.csv")
    assert set(scores["dimension"]) == {"Curiosity", "Caution"}
    assert scores["score"].between(1, 5).all()
    resp = pd.read_csv(tmp_path / "exp" / "responses.csv")
    assert set(resp["k"]) == {5} and resp[[f"p_{i}" for i in range(1, 6)]].sum(axis=1).round(9).eq(1).all()


def test_unreachable_server_leaves_the_store_unchanged(tmp_path):
    import hashlib
    import socket

    out = tmp_path / "out"
    base = {"name": "reach", "output": str(out), "report": False,
            "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "MATH"]}],
            "population": {"baseline": True, "sources": []}, "models": SMALL["models"]}
    ok = vs("run", str(write_study(tmp_path, base, "ok.yaml")), "-q", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    store = out / "valuescope.sqlite"
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = {**base, "models": [{"name": "down", "backend": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                                "model": "x", "timeout": 5, "max_retries": 1}]}
    res = vs("run", str(write_study(tmp_path, down, "down.yaml")), "-q", cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
    assert not (out / "valuescope.sqlite-wal").exists() or (out / "valuescope.sqlite-wal").stat().st_size == 0


def _tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Per table title the rows of a rich table printed wide enough that no cell wraps: {column: cell}."""
    out: dict[str, list[dict[str, str]]] = {}
    lines = text.splitlines()
    title, header = "", []
    for i, line in enumerate(lines):
        if line.startswith("┏") and i:
            title = lines[i - 1].strip()
        elif line.startswith("┃"):
            header = [c.strip() for c in line.split("┃")[1:-1]]
        elif line.startswith("│"):
            out.setdefault(title, []).append(dict(zip(header, [c.strip() for c in line.split("│")[1:-1]],
                                                      strict=True)))
    return out


def test_show_gives_every_headline_number_its_exported_interval(tmp_path):
    """Issue 26 leftover: the compact headline printed inert_soft, top1, top2 and rank_order without intervals.
    Two contexts (so rank_order exists) on the synthetic model: every shown cell is the long metrics table's
    (the export's) value [ci_low, ci_high] of that metric, dimension and context, in the shared format."""
    from valuescope.output.api import Run
    from valuescope.output.numbers import fmt_ci

    study = write_study(tmp_path, {**SMALL, "population": {"baseline": True, "sources": [
        {"kind": "wvs", "n": 5, "seeds": [111]}]}, "contexts": {"topics": ["none", "chess"], "n_messages": [1]},
        "output": str(tmp_path / "out")})
    assert vs("run", str(study), "--no-report", "-q", cwd=tmp_path).returncode == 0
    res, text = cli_at_width(300, "show", "small", "--dir", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    metrics = Run(tmp_path / "out", "small").metrics
    shown_as = {"inert_hard": "inertia_hard", "steer_hard": "steerability_jsd_hard", "inert_soft": "inertia_soft",
                "steer_soft": "steerability_jsd_soft", "top1_hard": "top1_share_hard",
                "top2adj_hard": "top2_adjacent_hard", "rank_order": "rank_order"}
    tables = {t: rows for t, rows in _tables(text).items() if "headline: mfq30" in t}
    checked: dict[str, int] = {}
    for rows in tables.values():
        for row in rows:
            for col, metric in shown_as.items():
                if col not in row:
                    continue
                m = metrics[(metrics["metric"] == metric) & (metrics["dimension"] == row["dimension"])]
                # rank_order is over all context pairs; the others are per context
                m = m[(m["context_a"] == "all") & (m["context_b"] == "all")] if metric == "rank_order" \
                    else m[m["context_a"] == row["context"]]
                (r,) = m[["value", "ci_low", "ci_high"]].itertuples(index=False)
                assert row[col] == fmt_ci(*r), (col, row)
                checked[col] = checked.get(col, 0) + ("[" in row[col])
    # the four that had no interval: shown with one in every row (2 contexts x 5 dimensions)
    assert all(checked.get(c) == 10 for c in ("inert_soft", "top1_hard", "top2adj_hard", "rank_order")), checked
