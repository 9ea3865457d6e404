"""The ``activations`` table of the SQLite store: recorded residual-stream states, keyed by (run_id, key).

One row per (persona, context, repeat, layer) of a run: the state at the last token of the persona +
conversation prefix, as a little-endian float32 blob of ``dim`` numbers. Kept apart from ``responses``
(a state is not an answer); its schema is ``store.schema.ACTIVATIONS_SCHEMA`` (store schema 1), created by the
first write; written through :meth:`Store.transaction` with ``INSERT OR IGNORE``, one transaction per batch, so a
resumed run skips recorded keys and two writers never duplicate a row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from valuescope.core.units import unit_ids
from valuescope.store.schema import ACTIVATIONS_SCHEMA
from valuescope.store.sqlite import Store, StoreError

COLUMNS = ["run_id", "key", "persona_id", "condition", "persona", "context", "repeat", "layer", "n_tokens",
           "vector"]


def _exists(store: Store) -> bool:
    """Readers never create the table: reading a store leaves its file as it was."""
    return store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'activations'").fetchone() \
        is not None


def recorded_keys(store: Store, run_id: str) -> set[str]:
    if not _exists(store):
        return set()
    return {r[0] for r in store.db.execute("SELECT key FROM activations WHERE run_id = ?", (run_id,))}


def write_states(store: Store, rows: Sequence[dict[str, Any]]) -> int:
    """Rows with run_id, key, persona (dict), context (label), repeat, layer, n_tokens, vector (1-d array).
    Returns how many were new."""
    now = time.time()
    data = []
    for r in rows:
        vec = np.ascontiguousarray(r["vector"], dtype="<f4").ravel()
        data.append((r["run_id"], r["key"], r["persona"]["id"], json.dumps(r["persona"], sort_keys=True),
                     r["context"], int(r["repeat"]), int(r["layer"]), int(r["n_tokens"]), int(vec.size),
                     vec.tobytes(), now))
    with store.transaction() as cur:
        cur.execute(ACTIVATIONS_SCHEMA)  # the first recorded state creates the table, in the same transaction
        before = store.db.total_changes
        cur.executemany("INSERT OR IGNORE INTO activations VALUES (?,?,?,?,?,?,?,?,?,?,?)", data)
        return store.db.total_changes - before


def persona_units(states: pd.DataFrame) -> pd.Series:
    """The resampling unit (:func:`valuescope.core.units.unit_ids`) of each recorded state."""
    seeds = states["persona"].map(lambda p: p.get("set_seed"))
    return unit_ids(pd.DataFrame({"persona_id": states["persona_id"], "set_seed": seeds}))


def load_states(store: Store, run_id: str) -> pd.DataFrame:
    """A run's recorded states (``COLUMNS``; ``vector`` holds float32 arrays); empty when none."""
    if not _exists(store):
        return pd.DataFrame(columns=COLUMNS)
    rows = store.db.execute(
        "SELECT run_id, key, persona_id, persona_json, context, repeat, layer, n_tokens, dim, vector "
        "FROM activations WHERE run_id = ? ORDER BY rowid", (run_id,)).fetchall()
    recs = []
    for r in rows:
        persona = json.loads(r[3])
        vec = np.frombuffer(r[9], dtype="<f4")
        if vec.size != r[8]:
            raise StoreError(f"activations of run {run_id}: a stored vector has {vec.size} numbers, not {r[8]}")
        recs.append({"run_id": r[0], "key": r[1], "persona_id": r[2],
                     "condition": "baseline" if persona.get("kind") == "baseline" else "persona",
                     "persona": persona, "context": r[4], "repeat": int(r[5]), "layer": int(r[6]),
                     "n_tokens": int(r[7]), "vector": vec})
    return pd.DataFrame.from_records(recs, columns=COLUMNS)
