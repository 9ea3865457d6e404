"""Issue 19: a Ray run whose driver is SIGKILLed mid-run (inside its last answer transaction:
tests/fault_run.py) resumes to exactly the planned keys, with the answers of a local run (the study and
helpers of tests/test_ray.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'valuescope[ray]')")

from test_ray import PLANNED, STUDY, _rows, _study, cluster, local_run  # noqa: E402, F401

from valuescope.execution import runner  # noqa: E402
from valuescope.execution.executor_ray import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow
FAULT_RUN = Path(__file__).with_name("fault_run.py")


@pytest.mark.timeout(1800)  # a local run, a Ray run killed midway and its resume: minutes on a loaded machine
def test_a_driver_sigkilled_mid_run_resumes_exactly(cluster, local_run, tmp_path):  # noqa: F811
    out = tmp_path / "killed-driver"
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({**STUDY, "output": str(out)}))
    # the driver stores every answer: SIGKILL it inside the answer transaction that would complete the plan
    # (rows written, COMMIT not run), so the transactions before it are kept and the last one is lost,
    # however fast the workers answer
    killed = subprocess.run([sys.executable, str(FAULT_RUN), "--kill-at", "commit", "--after", str(PLANNED - 1), "--",
                             "run", str(spec), "--ray", cluster, "--ray-workers", "2", "--quiet", "--no-report"],
                            capture_output=True, text=True, timeout=1200)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    before = _rows(out)
    assert 0 < len(before) < PLANNED  # killed mid-run
    [res] = runner.run_study(_study(out), executor=RayExecutor(workers=2))
    assert res.already_done == len(before) and res.new == PLANNED - len(before)
    assert _rows(out) == _rows(local_run)
