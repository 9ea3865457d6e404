"""Issue 19: a Ray run whose driver is SIGKILLed mid-run resumes to exactly the planned keys, with the
answers of a local run (the study and helpers of tests/test_ray.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'valuescope[ray]')")

from test_ray import PLANNED, STUDY, _rows, _study, cluster, local_run  # noqa: E402, F401

from valuescope.execution import runner  # noqa: E402
from valuescope.execution.executor_ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)  # a local run, a Ray run killed midway and its resume: minutes on a loaded machine
def test_a_driver_sigkilled_mid_run_resumes_exactly(cluster, local_run, tmp_path):  # noqa: F811
    out = tmp_path / "killed-driver"
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({**STUDY, "output": str(out)}))
    proc = subprocess.Popen([sys.executable, "-m", "valuescope", "run", str(spec), "--ray", cluster,
                             "--ray-workers", "2", "--quiet", "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = out / "valuescope.sqlite"
    stored = 0
    deadline = time.monotonic() + 600
    while stored == 0:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the Ray run stored nothing within 10 minutes"
        time.sleep(0.05)
        if store.is_file():
            con = sqlite3.connect(store, timeout=30)
            try:
                stored = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
            finally:
                con.close()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before = _rows(out)
    assert 0 < len(before) < PLANNED  # killed mid-run
    [res] = runner.run_study(_study(out), executor=RayExecutor(workers=2))
    assert res.already_done == len(before) and res.new == PLANNED - len(before)
    assert _rows(out) == _rows(local_run)
