"""A stored run -> the tables every reader uses (tidy responses, per-persona scores, metrics).

Reads only the store: the instrument definitions a run used are stored with it, so a run can be
analysed after the files it came from have moved.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from valuescope.analysis import geometry_tables as gt
from valuescope.analysis.metrics.effects import effects_grid
from valuescope.analysis.metrics.registry import N_BOOT
from valuescope.analysis.metrics.summary import MetricInputs, metric_table
from valuescope.analysis.scoring import SCORE_FROM, score_personas
from valuescope.analysis.tidy import build_responses
from valuescope.core.types import Instrument, Item, Part, Scale
from valuescope.store.geometry import load_states
from valuescope.store.records import RunRecord
from valuescope.store.sqlite import Store, StoreError
from valuescope.study.spec import human_norms


def instrument_from_dict(d: dict[str, Any]) -> Instrument:
    parts = {
        pid: Part(id=p["id"], instructions=p["instructions"], stem=p["stem"],
                  scale=Scale(labels=tuple(p["scale"]["labels"]), values=tuple(p["scale"]["values"])))
        for pid, p in d["parts"].items()
    }
    items = tuple(
        Item(id=i["id"], part=i["part"], text=i["text"], dimension=i["dimension"], variants=dict(i["variants"]),
             catch=i["catch"], reverse=i["reverse"], meta=dict(i["meta"]))
        for i in d["items"]
    )
    return Instrument(id=d["id"], name=d["name"], citation=d["citation"], licence=d["licence"], parts=parts,
                      items=items, dimensions=tuple(d["dimensions"]), scoring=dict(d["scoring"]),
                      wordings=tuple(d["wordings"]))


@dataclass
class RunTables:
    run_id: str
    model: str
    info: RunRecord  # the run as stored (study, instruments, counts)
    instruments: dict[str, Instrument]
    responses: pd.DataFrame
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: list[dict[str, Any]] = field(default_factory=list)
    persona_texts: dict[str, str] = field(default_factory=dict)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    geometry: pd.DataFrame = field(default_factory=pd.DataFrame)  # persona positions (geometry_tables)
    dose: pd.DataFrame = field(default_factory=pd.DataFrame)  # scores against steering strength

    @property
    def counts(self) -> dict[str, Any]:
        r = self.responses
        om = r["outside_mass"].dropna() if len(r) else pd.Series(dtype=float)
        return {
            "planned": int(self.info.planned),
            "answered": len(r),
            "invalid": int((~r["valid"]).sum()) if len(r) else 0,
            "failed": len(self.failures),
            "personas": int(r.loc[r["condition"] == "persona", "persona_id"].nunique()) if len(r) else 0,
            "baseline": bool((r["condition"] == "baseline").any()) if len(r) else False,
            "contexts": int(r["context"].nunique()) if len(r) else 0,
            "outside_mass_mean": float(om.mean()) if len(om) else float("nan"),
            "outside_mass_max": float(om.max()) if len(om) else float("nan"),
            "methods": {str(k): int(v) for k, v in r["method"].value_counts().sort_index().items()} if len(r) else {},
            "reused_from": ({str(k): int(v) for k, v in r["reused_from"].dropna().value_counts().sort_index().items()}
                            if len(r) and "reused_from" in r.columns else {}),
        }


def load_run(store: Store, run_id: str, *, with_metrics: bool = True, n_boot: int = N_BOOT, seed: int = 0) -> RunTables:
    """A stored run's tables; ``with_metrics``: the long metrics table (``metric_table``: every registered
    family), the effects grid, and for recorded states / a steered run the persona positions and dose table."""
    info = store.run(run_id)
    run_id = info.run_id
    instruments = {k: instrument_from_dict(v) for k, v in info.instruments.items()}
    rows = store.responses(run_id)
    responses = build_responses(rows, instruments)
    personas = {p["id"]: p.get("description") or "(no persona: baseline)"
                for p in store.personas(run_id)}
    tables = RunTables(persona_texts=personas, run_id=run_id, model=info.model, info=info, instruments=instruments,
                       responses=responses,
                       failures=store.failures(run_id), conversations=store.conversations(run_id, limit=50))
    if len(responses):
        scored, kept_apart = split_readings(responses)
        score_from = str(info.study.get("score_from") or "expected")
        tables.scores = score_personas(scored, instruments, value=SCORE_FROM.get(score_from, "expected"))
        if with_metrics:
            key = (str(Path(store.path).resolve()), run_id, info.model, n_boot, seed,
                   hashlib.sha256(pickle.dumps((rows, info.study, info.instruments), protocol=5)).hexdigest())
            _add_metrics(store, tables, scored, kept_apart, n_boot=n_boot, seed=seed, key=key)
    return tables


#: The metrics table and effects grid of the last runs read in this process, by everything they are computed from:
#: the store, the run's stored answer rows (every column, ``created_at`` included), its study and instruments,
#: ``n_boot`` and ``seed``. ``valuescope run`` then ``show``/``report``/``export`` in one process, or two ``Run``
#: objects of one run, compute them once; an answer added, deleted or changed is another key. Runs with recorded
#: states (geometry) and a steered run (read with its reference run) are not kept; a run compared with human norms
#: adds its human settings and the norms file's bytes to the key. Copies go in and come out.
_MEMO: OrderedDict[tuple[Any, ...], tuple[pd.DataFrame, pd.DataFrame]] = OrderedDict()
MEMO_RUNS = 8


def _add_metrics(store: Store, tables: RunTables, scored: pd.DataFrame, kept_apart: pd.DataFrame, *,
                 n_boot: int, seed: int, key: tuple[Any, ...]) -> None:
    states = load_states(store, tables.run_id)
    study = gt.stored_study(tables.info)
    steered = study is not None and study.steer is not None and len(study.models) == 1
    human, human_note = human_norms(study, study.models[0]) if study is not None else (None, "")
    plain = not len(states) and not steered
    if human is not None:  # the metrics read the norms file: its settings and bytes join the key
        try:
            norms_bytes = Path(str(human.norms)).read_bytes()
        except OSError:
            plain = False  # unreadable: computed (and refused) anew, never served from the memo
        else:
            key = (*key, human.model_dump_json(), hashlib.sha256(norms_bytes).hexdigest(), human_note)
    if plain and key in _MEMO:
        _MEMO.move_to_end(key)
        tables.metrics, tables.effects = (f.copy() for f in _MEMO[key])
        return
    reference, ref_id, note = None, "", ""
    if steered:
        assert study is not None
        try:
            ref_id = store.reference_run_id(study, study.models[0], tables.info.instruments)
        except StoreError as exc:
            note = str(exc)
        else:
            ref = load_run(store, ref_id, with_metrics=False)
            reference = MetricInputs(ref.responses, ref.scores, ref.instruments, run_id=ref_id, model=ref.model)
    inputs = MetricInputs(scored, tables.scores, tables.instruments, n_boot=n_boot, seed=seed, run_id=tables.run_id,
                          model=tables.model, kept_apart=kept_apart, states=states, steered=steered,
                          reference=reference, reference_id=ref_id, reference_note=note, human=human,
                          human_note=human_note)
    tables.metrics = metric_table(inputs)
    tables.effects = effects_grid(tables.scores)
    if plain:
        _MEMO[key] = (tables.metrics.copy(), tables.effects.copy())
        while len(_MEMO) > MEMO_RUNS:
            _MEMO.popitem(last=False)
    if len(states):
        tables.geometry = gt.positions(states, tables.responses, tables.scores)
    if reference is not None:
        tables.dose = gt.dose_response(store, ref_id, reference.scores,
                                       lambda rid: load_run(store, rid, with_metrics=False).scores)


#: how each reading method reads an answer: a full next-token distribution, or one parsed option
READING_KIND = {"logprobs": "distribution", "generate": "parsed", "judge": "parsed"}


def split_readings(responses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(answers the metrics use, answers kept apart). Full distributions (logprobs) and one-hot
    parsed answers (generate, judge) mean different things (an answer's entropy, its JSD), so a run
    that holds both (an OpenAI-compatible server that stopped returning logprobs mid-run) is never
    pooled: metrics use the distributions, and the parsed answers are counted in ``mixed_readings``
    rows. A run read by parsing alone is scored on its parsed answers."""
    kind = responses["method"].map(lambda m: READING_KIND.get(str(m), str(m)))
    valid_kinds = set(kind[responses["valid"]])
    if len(valid_kinds) <= 1:
        return responses, responses.iloc[0:0]
    primary = "distribution" if "distribution" in valid_kinds else sorted(valid_kinds)[0]
    keep = (kind == primary) | ~responses["valid"]
    return responses[keep], responses[~keep]
