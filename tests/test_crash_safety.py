"""Issue 9: a run SIGKILLed at points the test chooses resumes to exactly the planned keys with the answers of
an uninterrupted run; concurrent processes on one store never duplicate an answer.

The kills are made by ``tests/fault_run.py`` inside the valuescope CLI: inside the answer transaction that
would pass N committed answers (rows written, ``COMMIT`` not run), or at a backend call once N answers are
committed. Store and resume need no language model: those tests run the synthetic backend (one interpreter
start each, no model load). One test does it to the embedded model, whose answers come from llama.cpp."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import SharedBackend, cli_in_process

from valuescope.analysis.tables import load_run
from valuescope.execution.runner import run_study
from valuescope.store.sqlite import Store
from valuescope.study.spec import study_from_dict

FAULT_RUN = Path(__file__).with_name("fault_run.py")
ITEMS = ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY", "MATH", "WEAK", "UNFAIRLY"]
SYNTHETIC = [{"name": "truth", "backend": "synthetic", "synthetic": {"query_sd": 0.5, "letter_weight": 0.3,
                                                                     "letter_bias": [0.1, 0.1, 0.4, 0.2, 0.1, 0.1]}}]
STUDY = {
    "name": "crash",
    "instruments": [{"name": "mfq30", "items": ITEMS}],
    "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 9, "seeds": [333]}]},
    "report": False,
    "option_order": "permute-persona",  # one order per condition: the counts below
}
PLANNED = 10 * 8  # (9 personas + the baseline) x 8 items


def _study_file(tmp: Path, out: Path, **extra) -> Path:
    p = tmp / f"{out.name}.yaml"
    p.write_text(yaml.safe_dump({**STUDY, "output": str(out), **extra}))
    return p


def _count(store: Path) -> tuple[int, int]:
    if not store.is_file():
        return 0, 0
    con = sqlite3.connect(store, timeout=30)
    try:
        return tuple(con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone())
    except sqlite3.OperationalError:  # killed before the tables were made
        return 0, 0
    finally:
        con.close()


def _answers(store: Path) -> dict[str, tuple]:
    con = sqlite3.connect(store)
    try:
        return {r[0]: r[1:] for r in con.execute("SELECT key, probs, outside_mass, valid, method FROM responses")}
    finally:
        con.close()


def _faulty(study: Path, *fault: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FAULT_RUN), *fault, "--", "run", str(study), "-q", "--no-report",
                           "--json"], capture_output=True, text=True, timeout=timeout)


def _metrics(out: Path) -> pd.DataFrame:
    with Store(out, create=False) as store:
        (run,) = store.runs()
        tables = load_run(store, run.run_id, n_boot=50, seed=1)
    cols = ["instrument", "metric", "dimension", "context_a", "context_b", "value"]
    return tables.metrics[cols].sort_values(cols[:5]).reset_index(drop=True)


@pytest.mark.slow  # three interpreter starts (was four: 12 CPU-seconds here, 2026-12-05)
def test_sigkill_at_chosen_points_then_resume(tmp_path):
    out = tmp_path / "killed"
    study = _study_file(tmp_path, out, models=SYNTHETIC)
    store = out / "valuescope.sqlite"
    stored = 0
    # (where, after how many committed answers): inside the very first transaction, then mid-run inside a
    # transaction and inside a backend call
    for where, after in (("commit", 0), ("commit", 20), ("score", 10)):
        res = _faulty(study, "--kill-at", where, "--after", str(after))
        assert res.returncode == -signal.SIGKILL, res.stderr
        n, distinct = _count(store)
        assert n == distinct  # never a duplicate
        if where == "commit":  # the transaction that passed `after` is lost whole
            assert stored <= n <= stored + after, (where, after, stored, n)
        else:  # killed at the first backend call once `after` answers were committed
            assert stored + after <= n < PLANNED, (where, after, stored, n)
        assert n < PLANNED
        stored = n
    assert stored > 0
    # no fault: the resume, the CLI in this process (issue 28: was a fourth interpreter start)
    final = cli_in_process("run", str(study), "-q", "--no-report", "--json")
    assert final.returncode == 0, final.stderr
    (summary,) = json.loads(final.stdout)
    assert summary["session"]["already_stored"] == stored and summary["session"]["new"] == PLANNED - stored
    assert _count(store) == (PLANNED, PLANNED)

    clean = tmp_path / "clean"
    (res,) = run_study(study_from_dict({**STUDY, "models": SYNTHETIC, "output": str(clean)}))
    assert res.new == PLANNED
    assert _answers(store) == _answers(clean / "valuescope.sqlite")  # same keys, same answers
    pd.testing.assert_frame_equal(_metrics(out), _metrics(clean), rtol=1e-12, atol=1e-12)


def test_two_processes_on_one_store(tmp_path):
    out = tmp_path / "shared"
    study = _study_file(tmp_path, out, models=SYNTHETIC)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # both processes reach their first backend call before either asks anything, and every call takes
    # 0.05 s, so their transactions interleave whatever the machine's load
    cmd = [sys.executable, str(FAULT_RUN), "--delay", "0.05", "--barrier", f"{barrier}:2", "--", "run", str(study),
           "-q", "--no-report", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    new = 0
    for p in procs:
        stdout, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        (summary,) = json.loads(stdout)
        assert summary["session"]["already_stored"] == 0  # each started before the other stored anything
        new += summary["session"]["new"]
    assert new == PLANNED  # each answer stored by exactly one of them
    assert _count(out / "valuescope.sqlite") == (PLANNED, PLANNED)
    con = sqlite3.connect(out / "valuescope.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()


@pytest.mark.slow  # the embedded model in a CLI process and in this one (10 queries in all)
def test_embedded_model_sigkilled_mid_run_resumes_bit_identically(tmp_path, embedded_backend):
    """The real model in a process killed inside its last answer transaction: the resume asks only what was
    lost and every stored answer equals an uninterrupted run's, bit for bit (llama.cpp's default
    scheduler answers each prompt alike, whatever was evaluated before). Issue 28: the smallest study with a
    transaction kept and one lost, the baseline and one persona x 2 items committed 2 answers (one condition's
    batch) per transaction (was 5 conditions x 4 items in transactions of 16 and 4: 44 queries, now 10)."""
    small = {"instruments": [{"name": "mfq30", "items": ITEMS[:2]}],
             "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 1, "seeds": [333]}]}}
    planned = 2 * 2
    out = tmp_path / "killed"
    killed = _faulty(_study_file(tmp_path, out, **small), "--chunk-size", "2", "--kill-at", "commit",
                     "--after", str(planned - 1))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _count(out / "valuescope.sqlite") == (2, 2)  # the first transaction kept, the last one lost
    backend = SharedBackend(embedded_backend)
    (resumed,) = run_study(study_from_dict({**STUDY, **small, "output": str(out)}),
                           backend_factory=lambda _m: backend)
    assert resumed.already_done == 2 and resumed.new == planned - 2
    (clean,) = run_study(study_from_dict({**STUDY, **small, "output": str(tmp_path / "clean")}),
                         backend_factory=lambda _m: backend)
    assert clean.new == planned and clean.run_id == resumed.run_id
    assert _answers(out / "valuescope.sqlite") == _answers(tmp_path / "clean" / "valuescope.sqlite")
