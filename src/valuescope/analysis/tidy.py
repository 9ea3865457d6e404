"""Stored answers -> the tidy per-query table every later stage reads.

One row per query. Columns (documented in the README, "Export formats"):

=================  ==========================================================================
run_id, model      which run and model
condition          "baseline" (no persona) or "persona"
persona_id         stable persona id ("baseline" for the baseline)
persona_kind       baseline / wvs / named / text
population         source of the persona ("wvs:seed=111", "tolkien", ...)
set_seed           persona-set seed (WVS sets), else NA
persona_name       name for named personas
gender             male / female / NA
attr_<name>        one column per persona attribute (WVS attributes, CSV columns, ...)
context            "none" or "<topic>@<n_messages>"
topic, n_messages  the conversation before the questionnaire
seed, repeat       sampling seed and repeat index (within-persona replication)
instrument         instrument id (mfq30, pvq_rr, pvq40, donation, or a user's)
item_id, part      the item and its part
dimension          foundation / value the item scores (NA for catch items)
wording            wording variant used (male / female / you / NA)
position           position of the item in the persona's item order
option_order       "i0,i1,..": scale index shown under letter A, B, ... (0-based)
k                  number of options
p_1 .. p_K         probability of each option in the *scale's* order (not the letter order)
outside_mass       probability on tokens spelling no option letter (NaN if unknown)
argmax             1-based index (scale order) of the most probable option; NA if invalid
argmax_value       scale value of that option
expected           probability-weighted scale value, sum_i p_i * value_i; NaN if invalid
valid              the answer could be read
method             logprobs / generate / judge
error, raw         why an answer is invalid, and the raw text where there is one
reused_from        the run this answer was copied from (the very same query asked there), else empty
key                the query's stable key
=================  ==========================================================================
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from valuescope.core.types import Instrument

BASE_COLUMNS = [
    "run_id", "model", "condition", "persona_id", "persona_kind", "population", "set_seed",
    "persona_name", "gender", "context", "topic", "n_messages", "seed", "repeat", "instrument",
    "item_id", "part", "dimension", "wording", "position", "option_order", "k",
]
TAIL_COLUMNS = ["outside_mass", "argmax", "argmax_value", "expected", "valid", "method", "error", "raw", "key",
                "reused_from"]


def option_probs_in_scale_order(letter_probs: list[float], option_order: list[int]) -> list[float]:
    """Map a distribution over letters back to the scale: letter j shows option option_order[j]."""
    out = [0.0] * len(option_order)
    for j, idx in enumerate(option_order):
        out[idx] = float(letter_probs[j])
    return out


def build_responses(rows: Iterable[Mapping[str, Any]], instruments: Mapping[str, Instrument]) -> pd.DataFrame:
    """Build the tidy table from stored rows (see :mod:`valuescope.store.sqlite`)."""
    records: list[dict[str, Any]] = []
    max_k = 0
    attr_names: list[str] = []
    for row in rows:
        persona = json.loads(row["persona_json"])
        context = json.loads(row["context_json"])
        order = json.loads(row["option_order"])
        inst = instruments[row["instrument"]]
        scale = inst.parts[row["part"]].scale
        k = len(order)
        max_k = max(max_k, k)
        valid = bool(row["valid"])
        rec: dict[str, Any] = {
            "run_id": row["run_id"],
            "model": row["model"],
            "condition": "baseline" if persona["kind"] == "baseline" else "persona",
            "persona_id": persona["id"],
            "persona_kind": persona["kind"],
            "population": persona.get("population", ""),
            "set_seed": persona.get("set_seed"),
            "persona_name": persona.get("name"),
            "gender": persona.get("gender"),
            "context": "none" if context.get("topic") is None else f"{context['topic']}@{context['n_messages']}",
            "topic": context.get("topic") or "none",
            "n_messages": int(context.get("n_messages") or 0),
            "seed": int(row["seed"]),
            "repeat": int(row["repeat"]),
            "instrument": row["instrument"],
            "item_id": row["item_id"],
            "part": row["part"],
            "dimension": row["dimension"],
            "wording": row["wording"],
            "position": int(row["position"]),
            "option_order": ",".join(str(i) for i in order),
            "k": k,
        }
        for name, value in (persona.get("attributes") or {}).items():
            col = f"attr_{name}"
            if col not in attr_names:
                attr_names.append(col)
            rec[col] = value
        if valid:
            probs = option_probs_in_scale_order(json.loads(row["probs"]), order)
            arg = int(np.argmax(probs))
            rec.update(
                {f"p_{i + 1}": probs[i] for i in range(k)},
                argmax=arg + 1,
                argmax_value=float(scale.values[arg]),
                expected=float(np.dot(probs, scale.values)),
            )
        else:
            rec.update({f"p_{i + 1}": np.nan for i in range(k)}, argmax=pd.NA, argmax_value=np.nan,
                       expected=np.nan)
        om = row["outside_mass"]
        rec.update(
            outside_mass=np.nan if om is None else float(om),
            valid=valid,
            method=row["method"],
            error=row["error"],
            raw=row["raw"],
            key=row["key"],
            reused_from=row.get("reused_from"),
        )
        records.append(rec)
    columns = BASE_COLUMNS[:9] + sorted(attr_names) + BASE_COLUMNS[9:] + [
        f"p_{i + 1}" for i in range(max_k)
    ] + TAIL_COLUMNS
    df = pd.DataFrame.from_records(records, columns=columns)
    df["argmax"] = df["argmax"].astype("Int64")
    df["set_seed"] = df["set_seed"].astype("Int64")
    df["valid"] = df["valid"].astype(bool)
    return df
