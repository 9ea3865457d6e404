"""A stored run's geometry: the persona-space and steering rows of the long metrics table, the persona
positions drawn in the report, and the dose-response table of steered runs (docs/geometry.md).

Reads only the store (``activations`` table, the reference run's answers); called by
:func:`valuescope.analysis.tables.load_run`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import metrics_frame, unit_ids
from valuescope.analysis.metrics.geometry import geometry_rows, persona_positions, persona_steerability, profile_shift
from valuescope.analysis.metrics.steering import steering_rows
from valuescope.store.geometry import load_states
from valuescope.store.sqlite import Store, StoreError

DOSE_COLUMNS = ["reference", "run_id", "add", "cap", "instrument", "dimension", "score", "n"]


def _spec(info: dict[str, Any]):
    from valuescope.study.spec import Study

    try:
        return Study.model_validate(info["study"])
    except Exception:  # noqa: BLE001 - a run stored by an older version simply has no geometry settings
        return None


def add_geometry(store: Store, tables: Any, *, n_boot: int, seed: int) -> None:
    """Append geometry / steering rows to ``tables.metrics``; fill ``tables.geometry`` and ``tables.dose``."""
    rows: list[dict[str, Any]] = []
    states = load_states(store, tables.run_id)
    if len(states):
        rows.extend(geometry_rows(states, tables.responses, tables.scores, run_id=tables.run_id, model=tables.model,
                                  n_boot=n_boot, seed=seed))
        tables.geometry = _positions(states, tables)
    study = _spec(tables.info)
    if study is not None and study.steer is not None and len(study.models) == 1:
        from valuescope.execution.geometry_run import reference_run_id

        try:
            ref_id = reference_run_id(study, study.models[0], store)
            ref = _load_plain(store, ref_id)
        except StoreError as exc:
            rows.append({"run_id": tables.run_id, "model": tables.model, "instrument": "",
                         "metric": "steer_delta_steerability", "dimension": "", "context_a": "all", "context_b": "",
                         "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0,
                         "note": f"no reference run: {exc}"})
        else:
            rows.extend(steering_rows(ref.responses, tables.responses, ref.scores, tables.scores,
                                      run_id=tables.run_id, ref_run_id=ref_id, model=tables.model,
                                      n_boot=n_boot, seed=seed))
            tables.dose = dose_response(store, ref_id, ref)
    if rows:
        extra = metrics_frame(rows)
        tables.metrics = extra if tables.metrics is None or tables.metrics.empty else pd.concat(
            [tables.metrics, extra], ignore_index=True)


def _load_plain(store: Store, run_id: str) -> Any:
    from valuescope.analysis.tables import load_run

    return load_run(store, run_id, with_metrics=False)


def _positions(states: pd.DataFrame, tables: Any) -> pd.DataFrame:
    """Persona positions with what the figures colour and plot them by: attributes, steerability, shift."""
    pos = persona_positions(states)
    if pos.empty or tables.responses.empty:
        return pos
    r = tables.responses.assign(unit=unit_ids(tables.responses))
    attrs = [c for c in r.columns if c.startswith("attr_")] + [c for c in ("gender", "population") if c in r]
    if attrs:
        pos = pos.merge(r.groupby("unit")[attrs].first().reset_index(), on="unit", how="left")
    steer = persona_steerability(tables.responses)
    if len(steer):
        s = steer.groupby(["unit", "context"])["steerability"].mean().reset_index()
        pos = pos.merge(s, on=["unit", "context"], how="left")
    shift = profile_shift(tables.scores) if len(tables.scores) else pd.DataFrame()
    if len(shift):
        v = shift.groupby(["unit", "context"])["shift"].mean().reset_index()
        pos = pos.merge(v, on=["unit", "context"], how="left")
    return pos


def dose_response(store: Store, ref_id: str, ref: Any) -> pd.DataFrame:
    """Mean persona score per dimension for the reference run (``add`` = 0, no cap) and every steered
    run in the store that takes its axis from it: the value scores against steering strength."""
    recs = []

    def collect(run_id: str, add: float, cap: Any, scores: pd.DataFrame) -> None:
        if scores is None or scores.empty:
            return
        from valuescope.analysis.metrics._common import choose_level

        lv = choose_level(scores)
        s = scores[(scores["condition"] == "persona") & ((scores["level"] == lv) if lv else True)]
        for (inst, dim), g in s.groupby(["instrument", "dimension"], sort=True):
            recs.append({"reference": ref_id, "run_id": run_id, "add": add, "cap": cap, "instrument": inst,
                         "dimension": dim, "score": float(g["score"].mean()), "n": int(g["score"].notna().sum())})

    collect(ref_id, 0.0, None, ref.scores)
    from valuescope.execution.geometry_run import reference_run_id

    for r in store.runs():
        if r["run_id"] == ref_id:
            continue
        info = store.run(r["run_id"])
        study = _spec(info)
        if study is None or study.steer is None or len(study.models) != 1:
            continue
        try:
            if reference_run_id(study, study.models[0], store) != ref_id:
                continue
        except StoreError:
            continue
        cap = study.steer.cap if study.steer.cap is not None else study.steer.cap_value
        collect(r["run_id"], study.steer.add, cap, _load_plain(store, r["run_id"]).scores)
    return pd.DataFrame.from_records(recs, columns=DOSE_COLUMNS)
