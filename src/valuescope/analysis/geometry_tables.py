"""A stored run's geometry tables beside the metrics: the persona positions drawn in the report and the
dose-response table of steered runs (docs/geometry.md). The geometry and steering rows of the long metrics
table are metric families (``metrics/geometry.py``, ``metrics/steering.py``). Called by
:func:`valuescope.analysis.tables.load_run`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from valuescope.analysis.metrics import choose_level, unit_ids
from valuescope.analysis.metrics.geometry import persona_positions, persona_steerability, profile_shift
from valuescope.store.records import RunRecord
from valuescope.store.sqlite import Store, StoreError
from valuescope.study.spec import Study

DOSE_COLUMNS = ["reference", "run_id", "add", "cap", "instrument", "dimension", "score", "n"]


def stored_study(info: RunRecord) -> Study | None:
    """The study stored with a run, or None for a run stored by a version without today's settings."""
    try:
        return info.spec()
    except Exception:  # noqa: BLE001 - a run stored by an older version simply has no geometry settings
        return None


def positions(states: pd.DataFrame, responses: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Persona positions with what the figures colour and plot them by: attributes, steerability, shift."""
    pos = persona_positions(states)
    if pos.empty or responses.empty:
        return pos
    r = responses.assign(unit=unit_ids(responses))
    attrs = [c for c in r.columns if c.startswith("attr_")] + [c for c in ("gender", "population") if c in r]
    if attrs:
        pos = pos.merge(r.groupby("unit")[attrs].first().reset_index(), on="unit", how="left")
    steer = persona_steerability(responses)
    if len(steer):
        s = steer.groupby(["unit", "context"])["steerability"].mean().reset_index()
        pos = pos.merge(s, on=["unit", "context"], how="left")
    shift = profile_shift(scores) if len(scores) else pd.DataFrame()
    if len(shift):
        v = shift.groupby(["unit", "context"])["shift"].mean().reset_index()
        pos = pos.merge(v, on=["unit", "context"], how="left")
    return pos


def dose_response(store: Store, ref_id: str, ref_scores: pd.DataFrame,
                  scores_of: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    """Mean persona score per dimension for the reference run (``add`` = 0, no cap) and every steered
    run in the store that takes its axis from it: the value scores against steering strength."""
    recs = []

    def collect(run_id: str, add: float, cap: Any, scores: pd.DataFrame) -> None:
        if scores is None or scores.empty:
            return
        lv = choose_level(scores)
        s = scores[(scores["condition"] == "persona") & ((scores["level"] == lv) if lv else True)]
        for (inst, dim), g in s.groupby(["instrument", "dimension"], sort=True):
            recs.append({"reference": ref_id, "run_id": run_id, "add": add, "cap": cap, "instrument": inst,
                         "dimension": dim, "score": float(g["score"].mean()), "n": int(g["score"].notna().sum())})

    collect(ref_id, 0.0, None, ref_scores)
    for info in store.runs():
        if info.run_id == ref_id:
            continue
        study = stored_study(info)
        if study is None or study.steer is None or len(study.models) != 1:
            continue
        try:
            if store.reference_run_id(study, study.models[0], info.instruments) != ref_id:
                continue
        except StoreError:
            continue
        cap = study.steer.cap if study.steer.cap is not None else study.steer.cap_value
        collect(info.run_id, study.steer.add, cap, scores_of(info.run_id))
    return pd.DataFrame.from_records(recs, columns=DOSE_COLUMNS)
