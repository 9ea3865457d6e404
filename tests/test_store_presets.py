"""Issue 14, "done when": every shipped preset run one after another into one output folder leaves
every run with exactly its planned answers, and ``valuescope ls`` says so.

The presets share queries (the inertia ablations share every key with ``inertia``; the stability
presets share the baseline; a preset shares its queries with itself under another name). Run on the
synthetic known-truth backend (no network, through the real planner, runner and SQLite store) at a
reduced scale (and 3 items per instrument), in both orders."""

from __future__ import annotations

import pytest
from helpers import cli_in_process

from valuescope.execution.runner import resolve, run_study
from valuescope.store.sqlite import Store
from valuescope.study import presets as presetmod
from valuescope.study.spec import ModelSpec

SCALE = 0.05
N_ITEMS = 3


def _few_items(study):
    """Each instrument cut to its first N_ITEMS items: every preset asking an instrument keeps the same ids, so
    what the presets share (the baseline, the inertia ablations' keys, a preset under another name) stays
    shared. Generated instruments (``n_items``) are kept whole."""
    planned = resolve(study).instruments
    refs = [ref if ref.n_items else ref.model_copy(update={"items": [i.id for i in p.instrument.items][:N_ITEMS]})
            for ref, p in zip(study.instruments, planned, strict=True)]
    return study.model_copy(update={"instruments": refs, "report": False})


def _run_all(out, names):
    model = ModelSpec(name="synthetic", backend="synthetic")
    results = {}
    for name in names:
        study = _few_items(presetmod.adapt(presetmod.load_preset(name), model=model, scale=SCALE, output=str(out)))
        [res] = run_study(study)
        assert res.failed == 0, name
        assert res.already_done + res.new + res.reused == res.planned, (name, res)
        results[name] = res
    return results


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
    res = cli_in_process("ls", str(out))
    assert res.returncode == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if "synthetic" in ln]
    assert len(rows) == len(names) and all(ln.rstrip(" │").endswith("yes") for ln in rows), res.stdout
