"""Issue 14, "done when": every shipped preset run one after another into one output folder leaves
every run with exactly its planned answers, and ``valuescope ls`` says so.

The presets share queries (the inertia ablations share every key with ``inertia``; the stability
presets share the baseline; a preset shares its queries with itself under another name). Run on the
synthetic known-truth backend (no network, through the real planner, runner and SQLite store) at a
reduced scale, in both orders."""

from __future__ import annotations

import subprocess
import sys

import pytest

from valuescope.execution.runner import run_study
from valuescope.store.sqlite import Store
from valuescope.study import presets as presetmod
from valuescope.study.spec import ModelSpec

SCALE = 0.05


def _run_all(out, names):
    model = ModelSpec(name="synthetic", backend="synthetic")
    results = {}
    for name in names:
        study = presetmod.adapt(presetmod.load_preset(name), model=model, scale=SCALE, output=str(out))
        study = study.model_copy(update={"report": False})
        [res] = run_study(study)
        assert res.failed == 0, name
        assert res.already_done + res.new + res.reused == res.planned, (name, res)
        results[name] = res
    return results


@pytest.mark.slow  # ~24k answers planned, stored and planned again per order: 21 CPU-s each here (2026-12-05)
@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_every_preset_into_one_folder_keeps_every_run_whole(tmp_path, order):
    names = [n for n, _ in presetmod.list_presets()]
    if order == "reverse":
        names = names[::-1]
    out = tmp_path / "all"
    results = _run_all(out, names)
    assert any(r.reused for r in results.values()), "the presets share queries: some answers must be reused"
    with Store(out) as store:
        runs = store.runs()
    assert len(runs) == len(names)
    for r in runs:
        assert r.done == r.planned > 0 and r.failed == 0, r
    # running them all again asks nothing and adds nothing
    again = _run_all(out, names)
    assert all(r.new == 0 and r.reused == 0 and r.already_done == r.planned for r in again.values())
    res = subprocess.run([sys.executable, "-m", "valuescope", "ls", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if "synthetic" in ln]
    assert len(rows) == len(names) and all(ln.rstrip(" │").endswith("yes") for ln in rows), res.stdout
