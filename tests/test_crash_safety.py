"""Issue 9: SIGKILL a real run at random points, resume each time; concurrent processes on one store."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

STUDY = {
    "name": "crash",
    "instruments": [{"name": "mfq30", "items": ["EMOTIONALLY", "TREATED", "LOVECOUNTRY", "RESPECT", "DECENCY",
                                                "MATH", "WEAK", "UNFAIRLY"]}],
    "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 9, "seeds": [333]}]},
    "report": False,
}
PLANNED = 10 * 8


def _study(tmp: Path, out: Path) -> Path:
    p = tmp / f"{out.name}.yaml"
    p.write_text(yaml.safe_dump({**STUDY, "output": str(out)}))
    return p


def _count(store: Path) -> tuple[int, int]:
    if not store.is_file():
        return 0, 0
    con = sqlite3.connect(store, timeout=30)
    try:
        return tuple(con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone())
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        con.close()


def _metrics(out: Path) -> pd.DataFrame:
    from valuescope.analysis.tables import load_run
    from valuescope.store.sqlite import Store

    with Store(out, create=False) as store:
        (run,) = store.runs()
        tables = load_run(store, run["run_id"], n_boot=50, seed=1)
    cols = ["instrument", "metric", "dimension", "context_a", "context_b", "value"]
    return tables.metrics[cols].sort_values(cols[:5]).reset_index(drop=True)


def test_sigkill_at_random_points_then_resume(tmp_path):
    rng = random.Random(20261123)
    out = tmp_path / "killed"
    study = _study(tmp_path, out)
    store = out / "valuescope.sqlite"
    kills = 0
    for _ in range(8):
        before = _count(store)[0]
        proc = subprocess.Popen([sys.executable, "-m", "valuescope", "run", str(study), "-q", "--no-report"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait until this process has written something, then kill it after a random extra moment
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None and _count(store)[0] <= before:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        n, distinct = _count(store)
        assert n == distinct  # never a duplicate, even mid-kill
        if n == PLANNED:
            break
    assert kills >= 2
    final = subprocess.run([sys.executable, "-m", "valuescope", "run", str(study), "-q", "--no-report"],
                           capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert _count(store) == (PLANNED, PLANNED)

    clean = tmp_path / "clean"
    ok = subprocess.run([sys.executable, "-m", "valuescope", "run", str(_study(tmp_path, clean)), "-q",
                         "--no-report"], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
    # same keys, and the metrics of the interrupted run equal those of the uninterrupted one
    a = sqlite3.connect(store).execute("SELECT key FROM responses ORDER BY key").fetchall()
    b = sqlite3.connect(clean / "valuescope.sqlite").execute("SELECT key FROM responses ORDER BY key").fetchall()
    assert a == b
    ma, mb = _metrics(out), _metrics(clean)
    # the default llama.cpp scheduler is deterministic per prompt, so the numbers are identical
    pd.testing.assert_frame_equal(ma, mb, rtol=1e-12, atol=1e-12)


def test_two_processes_on_one_store(tmp_path):
    out = tmp_path / "shared"
    study = _study(tmp_path, out)
    cmd = [sys.executable, "-m", "valuescope", "run", str(study), "-q", "--no-report"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    assert _count(out / "valuescope.sqlite") == (PLANNED, PLANNED)
    con = sqlite3.connect(out / "valuescope.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
