"""A planned study answered by a synthetic model without the runner or the store: the tidy responses table
(the same rows and columns ``tidy.build_responses`` gives for the same run) and fast per-persona scores.

For power analysis and parameter-recovery tests: planning and the query meta are built once, then each
replication (another ``spec.seed`` or ``salt``) costs a few vectorised numpy operations. That the tables
equal those of a real run through runner, store and tidy is tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.tidy import BASE_COLUMNS, TAIL_COLUMNS
from valuescope.backends.synthetic_model import Design, design_from_metas, latent, letter_probs, scale_probs
from valuescope.core.types import Instrument, Query
from valuescope.design.plan import query_meta
from valuescope.study.spec import ModelSpec, Study
from valuescope.study.synthetic_spec import SyntheticSpec


@dataclass
class Simulation:
    """A study's queries for one model, with everything that does not depend on the answers."""

    queries: list[Query]
    instruments: dict[str, Instrument]
    design: Design
    static: pd.DataFrame  # the tidy columns that do not depend on the answers
    values: np.ndarray  # (n, kmax) scale values in scale order, NaN padding

    def probs(self, spec: SyntheticSpec, *, salt: str = "") -> np.ndarray:
        """(n, kmax) answer distributions in the scale's order (what ``tidy`` stores as p_1..p_K)."""
        return scale_probs(self.design, letter_probs(spec, self.design, latent(spec, self.design, salt=salt)))

    def expected(self, probs: np.ndarray) -> np.ndarray:
        return np.nansum(np.nan_to_num(probs) * np.nan_to_num(self.values), axis=1)

    def responses(self, spec: SyntheticSpec, *, salt: str = "") -> pd.DataFrame:
        """The tidy responses table of one replication (columns as ``tidy.build_responses``)."""
        return self.frame(self.probs(spec, salt=salt))

    def frame(self, probs: np.ndarray) -> pd.DataFrame:
        kmax = self.design.kmax
        df = self.static.copy()
        arg = np.nanargmax(np.where(np.isnan(probs), -1.0, probs), axis=1)
        for i in range(kmax):
            df[f"p_{i + 1}"] = probs[:, i]
        df["outside_mass"] = 0.0
        df["argmax"] = pd.array(arg + 1, dtype="Int64")
        df["argmax_value"] = self.values[np.arange(len(arg)), arg]
        df["expected"] = self.expected(probs)
        df["valid"] = True
        df["method"] = "logprobs"
        df["error"] = None
        df["raw"] = None
        df["key"] = [q.key for q in self.queries]
        df["reused_from"] = None
        return df[self.columns]

    @property
    def columns(self) -> list[str]:
        attrs = sorted(c for c in self.static.columns if c.startswith("attr_"))
        return (BASE_COLUMNS[:9] + attrs + BASE_COLUMNS[9:] + [f"p_{i + 1}" for i in range(self.design.kmax)]
                + TAIL_COLUMNS)


def prepare(study: Study, model: ModelSpec | None = None) -> Simulation:
    """Plan ``study`` for a synthetic ``model`` (default: the study's first model, as a synthetic one)."""
    from valuescope.execution.runner import plan_model, resolve

    resolved = resolve(study)
    model = model or ModelSpec(name="synthetic", backend="synthetic")
    queries = plan_model(resolved, model)
    return prepare_queries(queries, resolved.instrument_map, str(getattr(study, "administration", "independent")))


def prepare_queries(queries: list[Query], instruments: dict[str, Instrument],
                    administration: str = "independent") -> Simulation:
    metas = [query_meta(q, instruments[q.instrument], administration) for q in queries]
    design = design_from_metas(metas)
    values = np.full((len(queries), design.kmax), np.nan)
    for i, m in enumerate(metas):
        values[i, : len(m["values"])] = m["values"]
    return Simulation(queries, instruments, design, _static(queries), values)


def _static(queries: list[Query]) -> pd.DataFrame:
    """The answer-independent tidy columns; persona columns are built once per persona and repeated."""
    personas: dict[str, int] = {}
    prow: list[dict[str, Any]] = []
    pidx = np.empty(len(queries), dtype=np.int64)
    for i, q in enumerate(queries):
        p = q.persona
        j = personas.get(p.id)
        if j is None:
            j = personas[p.id] = len(prow)
            prow.append({"condition": "baseline" if p.is_baseline else "persona", "persona_id": p.id,
                         "persona_kind": p.kind, "population": p.population, "set_seed": p.set_seed,
                         "persona_name": p.name, "gender": p.gender,
                         **{f"attr_{k}": v for k, v in p.attributes.items()}})
        pidx[i] = j
    per = pd.DataFrame.from_records(prow)
    per["set_seed"] = per["set_seed"].astype("Int64")
    df = per.iloc[pidx].reset_index(drop=True)
    cols: dict[str, list[Any]] = {c: [] for c in ("context", "topic", "n_messages", "seed", "repeat", "instrument",
                                                   "item_id", "part", "dimension", "wording", "position",
                                                   "option_order", "k")}
    for q in queries:
        c = q.context
        for name, value in (("context", c.label), ("topic", c.topic or "none"), ("n_messages", int(c.n_messages or 0)),
                            ("seed", q.seed), ("repeat", q.repeat), ("instrument", q.instrument),
                            ("item_id", q.item_id), ("part", q.part), ("dimension", q.dimension),
                            ("wording", q.wording), ("position", q.position),
                            ("option_order", ",".join(map(str, q.option_order))), ("k", len(q.option_order))):
            cols[name].append(value)
    df = df.assign(run_id=[q.run_id for q in queries], model=[q.model for q in queries], **cols)
    return df


@dataclass
class ScoreIndex:
    """Static index for :func:`fast_scores`: which query feeds which (respondent, score group)."""

    respondents: pd.DataFrame  # one row per (persona unit, context, repeat, instrument) + carried columns
    resp: np.ndarray  # per query: respondent index, -1 for catch / unscored items
    pairs_q: np.ndarray  # (query, group) incidence: query indices ...
    pairs_g: np.ndarray  # ... and group indices
    groups: pd.DataFrame  # instrument, level, dimension, centre ("mrat" or "none")
    lo_hi: np.ndarray  # per query: min + max of its scale (reverse keying)
    reverse: np.ndarray


def score_index(sim: Simulation) -> ScoreIndex:
    from valuescope.core.units import unit_ids

    st = sim.static
    scored = np.array([sim.instruments[q.instrument].item(q.item_id).dimension is not None
                       and not sim.instruments[q.instrument].item(q.item_id).catch for q in sim.queries])
    unit = unit_ids(st).to_numpy()
    keys = pd.Series([f"{u}\x1f{c}\x1f{r}\x1f{i}" for u, c, r, i in
                      zip(unit, st["context"], st["repeat"], st["instrument"], strict=True)])
    codes, _ = pd.factorize(keys, sort=False)
    first = pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    carried = [c for c in st.columns if c.startswith("attr_")] + ["run_id", "model", "condition", "persona_id",
                                                                  "set_seed", "context", "repeat", "instrument"]
    respondents = st.iloc[first][carried].reset_index(drop=True).assign(unit=unit[first])
    group_rows: list[tuple[str, str, str, str]] = []
    gindex: dict[tuple[str, str, str], int] = {}
    member: dict[tuple[str, str], list[int]] = {}
    for inst_id, inst in sim.instruments.items():
        centre = str(inst.scoring.get("centre", "none"))
        levels = {"dimension": {d: [d] for d in inst.dimensions}, **(inst.scoring.get("levels", {}) or {})}
        for level, groups in levels.items():
            for g, members in groups.items():
                gindex[(inst_id, level, g)] = len(group_rows)
                group_rows.append((inst_id, level, g, centre))
                for m in members:
                    member.setdefault((inst_id, m), []).append(gindex[(inst_id, level, g)])
    pq, pg = [], []
    for i, q in enumerate(sim.queries):
        if scored[i]:
            for g in member.get((q.instrument, str(q.dimension)), []):
                pq.append(i)
                pg.append(g)
    resp = np.where(scored, codes, -1)
    items = [sim.instruments[q.instrument].item(q.item_id) for q in sim.queries]
    lo_hi = np.array([min(sim.instruments[q.instrument].parts[q.part].scale.values)
                      + max(sim.instruments[q.instrument].parts[q.part].scale.values) for q in sim.queries])
    return ScoreIndex(respondents, resp, np.array(pq, dtype=np.int64), np.array(pg, dtype=np.int64),
                      pd.DataFrame(group_rows, columns=["instrument", "level", "dimension", "centre"]), lo_hi,
                      np.array([it.reverse for it in items], dtype=bool))


def fast_scores(index: ScoreIndex, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-respondent scores of every group from per-query values ``x`` (e.g. ``expected``), as
    ``scoring.score_personas`` computes them: ``raw[r, g]`` = mean of the group's items (reverse-keyed
    items reversed), ``score`` = raw minus the respondent's mean over all its scored items where the
    instrument centres on MRAT. Shapes (respondents, groups); NaN where a respondent has no such group."""
    x = np.where(index.reverse, index.lo_hi - x, x)
    n_r, n_g = len(index.respondents), len(index.groups)
    r = index.resp[index.pairs_q]
    flat = r * n_g + index.pairs_g
    sums = np.bincount(flat, weights=x[index.pairs_q], minlength=n_r * n_g).reshape(n_r, n_g)
    counts = np.bincount(flat, minlength=n_r * n_g).reshape(n_r, n_g)
    with np.errstate(all="ignore"):
        raw = np.where(counts > 0, sums / counts, np.nan)
        ok = index.resp >= 0
        mrat = np.bincount(index.resp[ok], weights=x[ok], minlength=n_r) / np.bincount(index.resp[ok],
                                                                                       minlength=n_r)
    centred = (index.groups["centre"] == "mrat").to_numpy()
    score = np.where(centred[None, :], raw - mrat[:, None], raw)
    return raw, score
