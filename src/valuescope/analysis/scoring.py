"""Per-query answers -> per-persona dimension scores, following each instrument's scoring block.

Input is the tidy per-query table (:mod:`valuescope.analysis.tidy`). A *respondent* is one
(run_id, model, persona_id, context, repeat, instrument): one persona answering one questionnaire once.
Each query contributes one number ``x`` taken from the ``value`` column:

- ``"expected"``: the probability-weighted scale value, sum_i p_i * value_i (the default);
- ``"argmax_value"``: the scale value of the most probable option, i.e. the chosen answer (what Kovac
  et al. 2024 score). The study setting ``score_from: answer | expected`` picks one (``answer`` =
  ``argmax_value``); :data:`SCORE_FROM` maps it.

Invalid answers (``valid`` False or a NaN value) are left out of every mean and not counted in
``n_items``; a group with no valid item scores NaN. Nothing is dropped or imputed.

Formulas (``I_g`` = the respondent's valid, non-catch items of group ``g``):

- reverse-keyed item: x' = min(values) + max(values) - x on its part's scale (none of the built-ins has any);
- raw_score(g) = mean_{i in I_g} x_i. Level "dimension" groups are the instrument's dimensions (MFQ
  foundations, PVQ-RR's 19 values, PVQ-40's 10 values, donation races). Higher levels pool the items of
  their member dimensions (PVQ-RR: 19 values -> 10 basic values, Face in none; -> 4 higher-order values,
  Humility and Face in none), as the PVQ-RR scoring key lists them by items (Schwartz 2021);
- MRAT = mean of x over all the respondent's valid non-catch items (57 for PVQ-RR, 40 for PVQ-40);
- score(g) = raw_score(g) - MRAT where the instrument's ``scoring.centre`` is "mrat" (PVQ-RR, PVQ-40:
  Schwartz's instructions; Kovac et al. 2024, appendix A.5), else score = raw_score (MFQ: means of the
  0-5 answers, Graham et al. 2011; donation: mean coins per race, Kovac et al. 2024, A.6).

Sampling variance (``sampling_var``), in the scoring of the score itself: for expected scores, the variance the
score would have if every answer were drawn once from its own distribution (asking again at temperature 1),
exactly, answers being independent; for answer scores (``argmax_value``) 0: the chosen option is the same at
every asking (greedy), so a score from chosen options has no sampling term (issue 25: mixing the argmax score
with a temperature-1 sampling variance counted noise the score does not have). For expected scores:
``v_i = sum_o p_io value_o^2 - (sum_o p_io value_o)^2`` per item (NaN without ``p_*`` columns);
``sampling_var = sum_{i in I_g} v_i / n_g^2`` for a raw score; for an MRAT-centred score
(``sum_i a_i x_i`` with ``a_i = 1/n_g - 1/n_A`` in the group, ``-1/n_A`` outside it, A = all scored items)
``sampling_var = (1/n_g - 1/n_A)^2 S_g + (S_A - S_g) / n_A^2``, S the sums of ``v_i``.

Catch items (MFQ-30: MATH, GOOD; Graham et al. 2008 key) are screened, never scored or dropped: a rule
``{item, fail_if, threshold}`` fails when ``x fail_if threshold`` holds (MATH >= 3: one of the top 3
options of 0..5; GOOD <= 2: one of the bottom 3). With ``value="expected"`` the rule is applied to the
expected answer. A catch item that is missing or invalid fails no rule (there is no evidence of failure);
:func:`catch_screen` shows the values themselves.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

import numpy as np
import pandas as pd

from valuescope.core.types import Instrument
from valuescope.study.spec import SpecError

RESPONDENT = ["run_id", "model", "persona_id", "context", "repeat", "instrument"]
CARRIED = [
    "condition",
    "persona_kind",
    "population",
    "set_seed",
    "persona_name",
    "gender",
    "topic",
    "n_messages",
]
VALUE_COLUMNS = ("expected", "argmax_value")
#: the study setting ``score_from`` -> the responses column a score is computed from
SCORE_FROM = {"expected": "expected", "answer": "argmax_value"}
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def _check(responses: pd.DataFrame, value: str) -> None:
    if value not in VALUE_COLUMNS:
        raise SpecError(f"scoring: value must be one of {list(VALUE_COLUMNS)}, got {value!r}")
    needed = [*RESPONDENT, "item_id", "valid", value]
    missing = [c for c in needed if c not in responses.columns]
    if missing:
        raise SpecError(f"scoring: the responses table has no column {missing[0]!r}")


def _item_values(df: pd.DataFrame, inst: Instrument, value: str) -> pd.DataFrame:
    """Rows of one instrument with the item's dimension, catch flag and the (reversed) value ``x``."""
    by_id = {it.id: it for it in inst.items}
    unknown = sorted(set(df["item_id"].unique()) - set(by_id))
    if unknown:
        raise SpecError(
            f"scoring: instrument {inst.id!r} has no item {unknown[0]!r} (found in the responses)"
        )
    out = df.copy()
    out["_dimension"] = out["item_id"].map({i: it.dimension for i, it in by_id.items()})
    out["_catch"] = out["item_id"].map({i: it.catch for i, it in by_id.items()}).astype(bool)
    x = pd.to_numeric(out[value], errors="coerce").astype(float)
    reverse = out["item_id"].map({i: it.reverse for i, it in by_id.items()}).astype(bool)
    if reverse.any():
        spans = {
            i: min(inst.parts[it.part].scale.values) + max(inst.parts[it.part].scale.values)
            for i, it in by_id.items()
        }
        span = out["item_id"].map(spans)
        x = x.where(~reverse, span - x)
    out["_x"] = x.where(out["valid"].astype(bool) & x.notna())
    # an answer score (the chosen option) is what a greedy decoder answers every time: no sampling term
    v = _answer_variance(out, inst) if value == "expected" else pd.Series(0.0, index=out.index)
    out["_v"] = v.where(out["_x"].notna())
    return out


def _answer_variance(df: pd.DataFrame, inst: Instrument) -> pd.Series:
    """Per row: the variance of the scale value under the answer's own distribution (module docstring)."""
    var = pd.Series(np.nan, index=df.index)
    for part_id, rows in df.groupby("part", sort=False) if "part" in df.columns else []:
        part = inst.parts.get(str(part_id))
        cols = [f"p_{i + 1}" for i in range(part.scale.k)] if part is not None else []
        if not cols or any(c not in rows.columns for c in cols):
            continue
        p = rows[cols].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(all="ignore"):
            p = p / p.sum(axis=1, keepdims=True)
        v = np.asarray(part.scale.values, dtype=float)
        var.loc[rows.index] = np.clip(p @ (v * v) - (p @ v) ** 2, 0.0, None)
    return var


def _groups(inst: Instrument) -> pd.DataFrame:
    """(level, dimension-as-group, member dimension, order) rows for every level of the instrument."""
    rows = [("dimension", d, d) for d in inst.dimensions]
    for level, groups in inst.scoring.get("levels", {}).items():
        rows += [(level, g, m) for g, members in groups.items() for m in members]
    table = pd.DataFrame(rows, columns=["level", "group", "_dimension"])
    order = table[["level", "group"]].drop_duplicates().reset_index(drop=True)
    order["_order"] = np.arange(len(order))
    return table.merge(order, on=["level", "group"])


def catch_screen(
    responses: pd.DataFrame, instruments: Mapping[str, Instrument], *, value: str = "expected"
) -> pd.DataFrame:
    """One row per respondent of every instrument with catch rules: the value ``x`` of each catch item
    (column ``catch_<ITEM>``, NaN if missing or invalid), one bool per rule (``fail_<ITEM>``) and
    ``catch_failed`` = any rule failed. Rules and sources: see the module docstring."""
    _check(responses, value)
    frames = []
    for inst_id, df in responses.groupby("instrument", sort=False):
        inst = instruments.get(str(inst_id))
        if inst is None:
            raise SpecError(f"scoring: no instrument definition for {inst_id!r}")
        if not inst.scoring.get("catch", []):
            continue
        frames.append(_catch_table(_item_values(df, inst, value), inst))
    if not frames:
        return pd.DataFrame(columns=[*RESPONDENT, "catch_failed"])
    return pd.concat(frames, ignore_index=True)


def _catch_table(items: pd.DataFrame, inst: Instrument) -> pd.DataFrame:
    """:func:`catch_screen`'s rows of one instrument with catch rules, from its ``_item_values`` rows."""
    rules = inst.scoring.get("catch", [])
    table = items[RESPONDENT].drop_duplicates().reset_index(drop=True)
    failed = pd.Series(False, index=table.index)
    for rule in rules:
        col = items.loc[items["item_id"] == rule["item"], [*RESPONDENT, "_x"]]
        col = col.groupby(RESPONDENT, dropna=False, sort=False)["_x"].mean().rename(f"catch_{rule['item']}")
        table = table.merge(col.reset_index(), on=RESPONDENT, how="left")
        x = table[f"catch_{rule['item']}"]
        fail = _OPS[rule["fail_if"]](x, rule["threshold"]).fillna(False).astype(bool)
        table[f"fail_{rule['item']}"] = fail
        failed = failed | fail
    table["catch_failed"] = failed.to_numpy()
    return table


def score_personas(
    responses: pd.DataFrame, instruments: Mapping[str, Instrument], *, value: str = "expected"
) -> pd.DataFrame:
    """Per-respondent scores at every level of every instrument (formulas in the module docstring).

    Returns one row per (run_id, model, persona_id, context, repeat, instrument, level, dimension) with
    the persona and context columns carried through (condition, persona_kind, population, set_seed,
    persona_name, gender, attr_*, topic, n_messages where present) and: ``level`` ("dimension", or a level
    of the instrument's scoring block such as "basic" / "higher"), ``dimension`` (the group scored),
    ``score`` (MRAT-centred where the instrument says so), ``raw_score`` (uncentred mean), ``n_items``
    (valid items used) and ``catch_failed`` (False for instruments without catch items).
    """
    _check(responses, value)
    attrs = sorted(c for c in responses.columns if c.startswith("attr_"))
    carried = [c for c in CARRIED if c in responses.columns] + attrs
    out_frames = []
    for inst_id, df in responses.groupby("instrument", sort=False):
        inst = instruments.get(str(inst_id))
        if inst is None:
            raise SpecError(f"scoring: no instrument definition for {inst_id!r}")
        items = _item_values(df, inst, value)
        scored = items[~items["_catch"] & items["_dimension"].notna()]
        if carried:
            respondents = items.groupby(RESPONDENT, dropna=False, sort=False)[carried].first().reset_index()
        else:
            respondents = items[RESPONDENT].drop_duplicates().reset_index(drop=True)
        respondents["_rid"] = np.arange(len(respondents))
        scored = scored.merge(respondents[[*RESPONDENT, "_rid"]], on=RESPONDENT)
        groups = _groups(inst)
        has_x = scored["_x"].notna()
        scored = scored.assign(_vs=scored["_v"].where(has_x, 0.0).fillna(0.0),
                               _vmiss=(has_x & scored["_v"].isna()).astype(int))
        per_dim = scored.groupby(["_rid", "_dimension"]).agg(
            sum=("_x", "sum"), count=("_x", "count"), vsum=("_vs", "sum"), vmiss=("_vmiss", "sum")
        ).reset_index()
        cols = ["sum", "count", "vsum", "vmiss"]
        pooled = per_dim.merge(groups, on="_dimension").groupby(["_rid", "_order"])[cols].sum()
        grid = pd.MultiIndex.from_product(
            [respondents["_rid"], groups["_order"].drop_duplicates().sort_values()], names=["_rid", "_order"]
        )
        pooled = pooled.reindex(grid, fill_value=0).reset_index()
        pooled["raw_score"] = np.where(
            pooled["count"] > 0, pooled["sum"] / pooled["count"].clip(lower=1), np.nan
        )
        n_g = pooled["count"].clip(lower=1).to_numpy(dtype=float)
        s_g = pooled["vsum"].to_numpy(dtype=float)
        v_miss = pooled["vmiss"].to_numpy() > 0
        mrat = scored.groupby("_rid")["_x"].mean().reindex(respondents["_rid"]).to_numpy()
        if inst.scoring.get("centre", "none") == "mrat":
            pooled["score"] = pooled["raw_score"] - mrat[pooled["_rid"].to_numpy()]
            all_items = scored.groupby("_rid").agg(n=("_x", "count"), v=("_vs", "sum"), miss=("_vmiss", "sum"))
            all_items = all_items.reindex(respondents["_rid"], fill_value=0)
            rid = pooled["_rid"].to_numpy()
            n_a = all_items["n"].to_numpy(dtype=float)[rid]
            s_a = all_items["v"].to_numpy(dtype=float)[rid]
            v_miss = v_miss | (all_items["miss"].to_numpy()[rid] > 0)
            with np.errstate(all="ignore"):
                samp = (1 / n_g - 1 / n_a) ** 2 * s_g + (s_a - s_g) / n_a**2
        else:
            pooled["score"] = pooled["raw_score"]
            samp = s_g / n_g**2
        pooled["sampling_var"] = np.where((pooled["count"] > 0) & ~v_miss, samp, np.nan)
        labels = groups[["_order", "level", "group"]].drop_duplicates()
        pooled = pooled.merge(labels, on="_order").rename(columns={"group": "dimension", "count": "n_items"})
        pooled = pooled.drop(columns=["sum", "vsum", "vmiss"])
        # catch_screen(df, {inst.id: inst}) of the rows just read
        screen = _catch_table(items, inst) if inst.scoring.get("catch", []) else pd.DataFrame()
        if len(screen):
            respondents = respondents.merge(screen[[*RESPONDENT, "catch_failed"]], on=RESPONDENT, how="left")
            respondents["catch_failed"] = respondents["catch_failed"].fillna(False).astype(bool)
        else:
            respondents["catch_failed"] = False
        frame = respondents.merge(pooled, on="_rid").sort_values(["_rid", "_order"])
        out_frames.append(frame)
    columns = [
        "run_id",
        "model",
        "condition",
        "persona_id",
        "persona_kind",
        "population",
        "set_seed",
        "persona_name",
        "gender",
        *attrs,
        "context",
        "topic",
        "n_messages",
        "repeat",
        "instrument",
        "level",
        "dimension",
        "score",
        "raw_score",
        "sampling_var",
        "n_items",
        "catch_failed",
    ]
    columns = [
        c
        for c in columns
        if c in RESPONDENT
        or c in carried
        or c in ("level", "dimension", "score", "raw_score", "sampling_var", "n_items", "catch_failed")
    ]
    if not out_frames:
        return pd.DataFrame(columns=columns)
    result = pd.concat(out_frames, ignore_index=True)[columns]
    result["n_items"] = result["n_items"].astype(int)
    result["catch_failed"] = result["catch_failed"].astype(bool)
    return result.reset_index(drop=True)
