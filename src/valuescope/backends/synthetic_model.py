"""The synthetic model's generative model, vectorised over queries (formulas: ``synthetic_spec``).

Input is the plain per-query ``meta`` the runner attaches to each ``ScoreRequest`` (``plan.query_meta``):
persona id / attributes / name, instrument, item, dimension and the score groups it belongs to, reverse
flag, scale values, option order, context, repeat, position, administration. :func:`design_from_metas`
turns a list of them into arrays once; :func:`letter_probs` then gives every query's distribution over
the letters for a spec (and a ``salt`` that re-draws the random effects, for replications).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.special import ndtri

from valuescope.study.synthetic_norms import ordinal_probs
from valuescope.study.synthetic_spec import SyntheticSpec

BASELINE_KIND = "baseline"


def key_hashes(keys: Sequence[str]) -> np.ndarray:
    """The first 64 bits of each key's SHA-256, as uint64 (computed once per design)."""
    return np.array([int.from_bytes(hashlib.sha256(k.encode("utf-8")).digest()[:8], "big") for k in keys],
                    dtype=np.uint64)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al. 2014), vectorised; uint64 arithmetic wraps."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def stable_normals(hashes: np.ndarray, *stream: object) -> np.ndarray:
    """One standard normal per key hash for the stream ``stream`` (e.g. seed, kind, salt): the top 53 bits of
    SplitMix64(hash XOR SHA-256(stream)) as a uniform, through the normal quantile. Same on any machine."""
    if not len(hashes):
        return np.zeros(0)
    tag = np.uint64(key_hashes(["\x1f".join(str(s) for s in stream)])[0])
    x = _splitmix(_splitmix(np.asarray(hashes, dtype=np.uint64) ^ tag))
    return ndtri(((x >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53)


def _matches(key: str, instrument: str, dimension: str, groups: Sequence[str]) -> int:
    """0 = no match; else a specificity rank (4 = instrument/dimension ... 1 = group)."""
    inst, sep, name = key.rpartition("/")
    if sep and inst != instrument:
        return 0
    if name == dimension:
        return 4 if sep else 2
    if name in groups:
        return 3 if sep else 1
    return 0


def dimension_shift(mapping: Mapping[str, float], instrument: str, dimension: str, groups: Sequence[str]) -> float:
    """Sum of every entry of ``mapping`` whose key names this dimension (or a group holding it)."""
    return float(sum(v for k, v in mapping.items() if _matches(k, instrument, dimension, groups)))


def dimension_mean(spec: SyntheticSpec, instrument: str, dimension: str, groups: Sequence[str]) -> float:
    """The baseline latent mean: the most specific matching key of ``spec.baseline``, else ``default_mean``."""
    best, value = 0, spec.default_mean
    for k, v in spec.baseline.items():
        rank = _matches(k, instrument, dimension, groups)
        if rank > best:
            best, value = rank, v
    return float(value)


def persona_unit(meta: Mapping[str, Any]) -> str:
    """A persona's identity (as ``metrics._common.unit_ids``: the same id under two set seeds is two personas)."""
    seed = meta.get("set_seed")
    return str(meta["persona_id"]) if seed is None else f"{meta['persona_id']}|{int(seed)}"


def drift_key(unit: str, meta: Mapping[str, Any], instrument: str, dimension: Any) -> str:
    """What one drift draw ``v`` belongs to (``drift_by: conversation``, the default): a conversation
    (respondent, context, conversation seed), so two conversations of one respondent in one context drift apart
    as a real model's do. Seed 0's key is the key drift had when it was keyed by (respondent, context) alone
    (its draws, and every number measured with them, stay); ``drift_by: context`` uses that key whatever the
    seed (:func:`context_key`)."""
    key = context_key(unit, meta, instrument, dimension)
    seed = int(meta.get("context_seed", 0) or 0)
    return key if seed == 0 else f"{key}\x1fseed={seed}"


def context_key(unit: str, meta: Mapping[str, Any], instrument: str, dimension: Any) -> str:
    """(respondent, context label, instrument, dimension): drift's key under ``drift_by: context``."""
    return f"{unit}\x1f{meta['context']}\x1f{instrument}\x1f{dimension}"


class Cell(NamedTuple):
    unit: str
    baseline: bool
    instrument: str
    dimension: str
    groups: tuple[str, ...]
    attributes: dict[str, Any]
    name: str | None
    persona_id: str


@dataclass
class Design:
    """Queries as arrays. ``cell`` indexes (persona, instrument, dimension) cells; -1 = catch item."""

    n: int
    k: np.ndarray
    kmax: int
    order: np.ndarray  # (n, kmax) scale index under each letter, -1 padding
    rank: np.ndarray  # (n, kmax) ascending-value rank of each scale index, -1 padding
    reverse: np.ndarray
    position: np.ndarray
    sequential: np.ndarray
    item: np.ndarray
    items: list[str]
    cell: np.ndarray
    cells: list[Cell]
    ctx: np.ndarray  # (persona, context, instrument, dimension) codes
    ctx_keys: list[str]
    conv: np.ndarray  # (persona, context, conversation seed, instrument, dimension) codes: drift's default key
    conv_keys: list[str]
    rep: np.ndarray  # (persona, context, context seed, repeat, instrument, dimension) codes
    rep_keys: list[str]
    query: np.ndarray  # (persona, context, context seed, repeat, instrument, item) codes
    query_keys: list[str]
    _hashes: dict[str, np.ndarray] = field(default_factory=dict)
    _fixed: dict[str, np.ndarray] = field(default_factory=dict)

    def hashes(self, kind: str) -> np.ndarray:
        """Key hashes of ``kind`` (cells, ctx, conv, rep, query, items), computed once."""
        if kind not in self._hashes:
            keys = {"cells": [f"{c.unit}\x1f{c.instrument}\x1f{c.dimension}" for c in self.cells],
                    "ctx": self.ctx_keys, "conv": self.conv_keys, "rep": self.rep_keys, "query": self.query_keys,
                    "items": self.items}[kind]
            self._hashes[kind] = key_hashes(keys)
        return self._hashes[kind]

    @property
    def baseline_cells(self) -> np.ndarray:
        return np.array([c.baseline for c in self.cells], dtype=bool)


def _codes(keys: list[str]) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
    return codes.astype(np.int64), [str(u) for u in uniques]


def design_from_metas(metas: Sequence[Mapping[str, Any]]) -> Design:
    n = len(metas)
    ks = np.array([len(m["option_order"]) for m in metas], dtype=np.int64)
    kmax = int(ks.max()) if n else 0
    order = np.full((n, kmax), -1, dtype=np.int64)
    rank = np.full((n, kmax), -1, dtype=np.int64)
    rank_cache: dict[tuple[float, ...], np.ndarray] = {}
    cell_keys, cell_rows, ctx_keys, rep_keys, item_keys, query_keys = [], {}, [], [], [], []
    conv_keys: list[str] = []
    for i, m in enumerate(metas):
        k = ks[i]
        order[i, :k] = m["option_order"]
        values = tuple(float(v) for v in m["values"])
        if values not in rank_cache:
            rank_cache[values] = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        rank[i, :k] = rank_cache[values]
        unit = persona_unit(m)
        inst, dim = str(m["instrument"]), m.get("dimension")
        item_keys.append(f"{inst}\x1f{m['item_id']}")
        if dim is None:
            cell_keys.append("")
        else:
            ck = f"{unit}\x1f{inst}\x1f{dim}"
            cell_keys.append(ck)
            if ck not in cell_rows:
                cell_rows[ck] = Cell(unit, m.get("persona_kind") == BASELINE_KIND, inst, str(dim),
                                     tuple(m.get("groups") or ()), dict(m.get("attributes") or {}),
                                     m.get("persona_name"), str(m["persona_id"]))
        ctx_keys.append(context_key(unit, m, inst, dim))
        conv_keys.append(drift_key(unit, m, inst, dim))
        where = f"{unit}\x1f{m['context']}\x1f{m.get('context_seed', 0)}\x1f{m.get('repeat', 0)}\x1f{inst}"
        rep_keys.append(f"{where}\x1f{dim}")
        query_keys.append(f"{where}\x1f{m['item_id']}")
    cells = list(cell_rows.values())
    index = {ck: j for j, ck in enumerate(cell_rows)}
    cell = np.array([index.get(ck, -1) for ck in cell_keys], dtype=np.int64)
    item, items = _codes(item_keys)
    ctx, ctx_u = _codes(ctx_keys)
    conv, conv_u = _codes(conv_keys)
    rep, rep_u = _codes(rep_keys)
    query, query_u = _codes(query_keys)
    return Design(
        n=n, k=ks, kmax=kmax, order=order, rank=rank,
        reverse=np.array([bool(m.get("reverse")) for m in metas], dtype=bool),
        position=np.array([int(m.get("position", 0)) for m in metas], dtype=np.float64),
        sequential=np.array([m.get("administration") == "sequential" for m in metas], dtype=bool),
        item=item, items=items, cell=cell, cells=cells, ctx=ctx, ctx_keys=ctx_u, conv=conv, conv_keys=conv_u,
        rep=rep, rep_keys=rep_u,
        query=query, query_keys=query_u,
    )


def cell_fixed(spec: SyntheticSpec, cells: Sequence[Cell]) -> np.ndarray:
    """Per cell: baseline mean + attribute effects + named-persona effects (no random part)."""
    out = np.zeros(len(cells))
    for j, c in enumerate(cells):
        value = dimension_mean(spec, c.instrument, c.dimension, c.groups)
        if not c.baseline:
            for key, shifts in spec.effects.items():
                attr, _, level = key.partition("=")
                if str(c.attributes.get(attr)) == level:
                    value += dimension_shift(shifts, c.instrument, c.dimension, c.groups)
            for who, shifts in spec.personas.items():
                if who in (c.persona_id, c.name):
                    value += dimension_shift(shifts, c.instrument, c.dimension, c.groups)
        out[j] = value
    return out


def latent(spec: SyntheticSpec, design: Design, *, salt: str = "", fixed: np.ndarray | None = None) -> np.ndarray:
    """``eta`` of every query (module docstring of ``synthetic_spec``). ``salt`` re-draws the persona, drift
    and repeat effects (not the item offsets, which belong to the model)."""
    if fixed is None:
        key = spec.model_dump_json(include={"baseline", "default_mean", "effects", "personas"})
        if key not in design._fixed:
            design._fixed = {key: cell_fixed(spec, design.cells)}  # one spec's effects cached at a time
        fixed = design._fixed[key]
    s = spec.seed
    dim_part = np.zeros(design.n)
    scored = design.cell >= 0
    dim_part[scored] = fixed[design.cell[scored]]
    if spec.persona_sd > 0 and len(design.cells):
        u = spec.persona_sd * stable_normals(design.hashes("cells"), s, "u", salt)
        u[design.baseline_cells] = 0.0
        dim_part[scored] += u[design.cell[scored]]
    if spec.drift_sd > 0:
        kind, codes = ("conv", design.conv) if spec.drift_by == "conversation" else ("ctx", design.ctx)
        v = spec.drift_sd * stable_normals(design.hashes(kind), s, "v", salt)
        dim_part[scored] += v[codes[scored]]
    if spec.repeat_sd > 0:
        w = spec.repeat_sd * stable_normals(design.hashes("rep"), s, "w", salt)
        dim_part[scored] += w[design.rep[scored]]
    if spec.query_sd > 0:
        e = spec.query_sd * stable_normals(design.hashes("query"), s, "e", salt)
        dim_part += e[design.query]
    eta = np.where(design.reverse, -dim_part, dim_part)
    if spec.item_sd > 0:
        off = spec.item_sd * stable_normals(design.hashes("items"), spec.item_seed, "item")
        eta = eta + off[design.item]
    if spec.position_slope:
        eta = eta + spec.position_slope * np.where(design.sequential, design.position, 0.0)
    return eta


def _bias(spec: SyntheticSpec, k: int) -> np.ndarray:
    from valuescope.backends.base import BackendError

    assert spec.letter_bias is not None
    if len(spec.letter_bias) < k:
        raise BackendError(f"synthetic model: letter_bias lists {len(spec.letter_bias)} letters, a query has {k}")
    b = np.asarray(spec.letter_bias[:k], dtype=float)
    if b.sum() <= 0:
        raise BackendError(f"synthetic model: letter_bias has no mass on the first {k} letters")
    return b / b.sum()


def letter_probs(spec: SyntheticSpec, design: Design, eta: np.ndarray) -> np.ndarray:
    """(n, kmax) distribution over the letters A, B, ... of each query (NaN padding beyond its K)."""
    out = np.full((design.n, design.kmax), np.nan)
    for k in np.unique(design.k):
        rows = np.where(design.k == k)[0]
        k = int(k)
        by_rank = ordinal_probs(eta[rows], k, spec)  # ascending value order
        scale = np.take_along_axis(by_rank, design.rank[rows, :k], axis=1)  # scale index order
        letters = np.take_along_axis(scale, design.order[rows, :k], axis=1)  # letter j shows order[j]
        if spec.letter_weight > 0 and spec.letter_bias is not None:
            letters = (1.0 - spec.letter_weight) * letters + spec.letter_weight * _bias(spec, k)[None, :]
        letters = letters / letters.sum(axis=1, keepdims=True)
        out[rows, :k] = letters
    return out


def scale_probs(design: Design, letters: np.ndarray) -> np.ndarray:
    """Letter distributions mapped back to the scale's order (as ``tidy`` does): p[order[j]] = q[j]."""
    out = np.full_like(letters, np.nan)
    for k in np.unique(design.k):
        rows = np.where(design.k == k)[0]
        k = int(k)
        block = np.empty((len(rows), k))
        np.put_along_axis(block, design.order[rows, :k], letters[rows, :k], axis=1)
        out[rows, :k] = block
    return out
