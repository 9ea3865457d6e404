"""Motivated reasoning under a persona: accuracy on evidence whose truth suits the persona's identity or not.

Source: Dash, Reymond, Spiro & Caliskan (2025), "Persona-Assigned Large Language Models Exhibit Human-Like
Motivated Reasoning", arXiv 2506.20020, on the covariance-detection task of Kahan, Peters, Dawson & Slovic
(2017). Items: :mod:`valuescope.design.instruments.evidence` (each records its correct option and the identity the
correct conclusion suits). See docs/metrics.md, "Motivated reasoning".

Per answer: ``soft`` = probability on the correct option, ``hard`` = 1 if the most probable option is the
correct one, else 0. A persona's identity side comes from its ``identity`` attribute (:func:`identity_side`).
An answer is *congruent* when the correct conclusion suits the persona's side (``meta.flatters``; on
neutral items the balanced placebo side ``meta.placebo_flatters``), else *incongruent*.

Every evidence table is used twice with the correct conclusion flipped (one "pair"), so for every persona
with a side each complete pair has one congruent and one incongruent member: the paired difference
``delta_pq = x(congruent) - x(incongruent)`` removes the table's difficulty. For the personas ``P`` of a side:

* ``acc_c = mean_p mean_q x_pq(congruent)``, ``acc_i`` likewise (only pairs with both answers valid);
* bias difference ``D = acc_c - acc_i`` (= mean_p mean_q delta_pq);
* bias ratio ``R = acc_c / acc_i`` (Dash et al.'s "90% more likely" is R = 1.9);
* odds ratio ``OR = [a_c / (1 - a_c)] / [a_i / (1 - a_i)]`` with ``a = (acc * N + 0.5) / (N + 1)`` (N =
  answers in the cell; the 0.5 continuity correction keeps OR finite when a hard accuracy is 0 or 1);
* 95% CIs: percentile bootstrap over personas (``n_boot`` resamples of P with replacement);
* p-value: paired sign-flip permutation test: every ``delta_pq`` gets an independent random sign (under
  "no congruence effect" the two members of a pair are exchangeable), ``p = (1 + #{|T*| >= |T|}) /
  (1 + n_perm)`` with ``T = mean_p mean_q delta_pq``.

A model without motivated reasoning (a persona-blind model, a model that always answers "better", a
letter-biased model) scores D = 0 up to noise: the correct answers are balanced within every pair and the
political topics are balanced between the sides. Discernment: accuracy of the persona answers vs the
baseline's on the same items; ``drop = acc_baseline - mean_p acc_p`` (Dash et al.: up to 9% lower with a
persona), CI by resampling pairs and personas jointly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import (
    bootstrap_weights,
    group_rng,
    metric_row,
    metrics_frame,
    percentile_ci,
    quiet,
    unit_ids,
)
from valuescope.core.types import Instrument

SIDES = ("liberal", "conservative")
_KEYWORDS = {
    "liberal": ("liberal", "democrat", "left", "progressive", "social democrat"),
    "conservative": ("conservative", "republican", "right", "tory"),
}
PREFIX = {"political": "evidence", "neutral": "control"}


def identity_side(value: Any) -> str | None:
    """``liberal`` / ``conservative`` for an identity text (WVS ``identity`` attribute, or a free-text
    ``identity`` column of a persona file: "Democrat", "left-wing", "a Republican voter" ...), None when it
    names neither or both."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    hits = [side for side, words in _KEYWORDS.items() if any(w in text for w in words)]
    return hits[0] if len(hits) == 1 else None


def is_evidence(inst: Instrument) -> bool:
    return bool(inst.items) and all("truth" in it.meta and "pair" in it.meta for it in inst.items)


def evidence_table(responses: pd.DataFrame, instruments: Mapping[str, Instrument]) -> pd.DataFrame:
    """One row per answer to an evidence item: unit, side, pair, kind, congruent, soft, hard, valid."""
    frames = []
    for inst_id, inst in instruments.items():
        if not is_evidence(inst) or "instrument" not in responses.columns:
            continue
        df = responses[responses["instrument"] == inst_id]
        if df.empty:
            continue
        meta = pd.DataFrame([{"item_id": it.id, **{k: it.meta.get(k) for k in (
            "pair", "kind", "topic", "truth", "correct", "flatters", "placebo_flatters")},
            "debias": it.meta.get("condition", "none")} for it in inst.items])
        out = df[["run_id", "model", "instrument", "context", "condition", "persona_id", "item_id", "valid",
                  "argmax"]].copy()
        out["unit"] = unit_ids(df).to_numpy()
        ident = df["attr_identity"] if "attr_identity" in df.columns else pd.Series(None, index=df.index)
        out["identity"] = ident.to_numpy()
        out["side"] = [identity_side(v) for v in ident]
        out = out.merge(meta, on="item_id", how="left")
        probs = df[[f"p_{i}" for i in (1, 2)]].to_numpy(dtype=float)
        correct = out["correct"].to_numpy(dtype=int)
        valid = out["valid"].to_numpy(dtype=bool)
        out["soft"] = np.where(valid, probs[np.arange(len(out)), correct], np.nan)
        arg = pd.to_numeric(out["argmax"], errors="coerce").to_numpy(dtype=float)
        out["hard"] = np.where(valid & ~np.isnan(arg), (arg == correct + 1).astype(float), np.nan)
        suits = np.where(out["kind"] == "political", out["flatters"], out["placebo_flatters"])
        out["suits"] = suits
        out["congruent"] = [None if s is None else bool(s == t) for s, t in zip(out["side"], suits, strict=True)]
        frames.append(out.drop(columns=["argmax"]))
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def paired_deltas(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Per (unit, pair) with a side: x_c, x_i (congruent / incongruent member) of ``measure``; repeats are
    averaged; pairs with a missing or invalid member are left out (counted by :func:`congruence_bias`)."""
    t = table[table["side"].notna() & table["congruent"].notna()]
    wide = t.pivot_table(index=["unit", "side", "pair"], columns="congruent", values=measure, aggfunc="mean")
    wide = wide.rename(columns={True: "x_c", False: "x_i"}).reset_index()
    for col in ("x_c", "x_i"):
        if col not in wide.columns:
            wide[col] = np.nan
    return wide


def _stats(xc: np.ndarray, xi: np.ndarray, nc: float, ni: float) -> tuple[Any, Any, Any, Any, Any]:
    """(acc_c, acc_i, D, R, OR) from per-unit mean accuracies along the last axis (module docstring)."""
    with np.errstate(all="ignore"), quiet():
        ac, ai = np.nanmean(xc, axis=-1), np.nanmean(xi, axis=-1)
        cc, ci = (ac * nc + 0.5) / (nc + 1), (ai * ni + 0.5) / (ni + 1)
        odds = (cc / (1 - cc)) / (ci / (1 - ci))
        ratio = np.where(ai > 0, ac / np.where(ai > 0, ai, 1.0), np.nan)
    return ac, ai, ac - ai, ratio, odds


def congruence_bias(deltas: pd.DataFrame, *, n_boot: int = 1000, n_perm: int = 2000, seed: int = 0,
                    key: tuple[Any, ...] = ()) -> dict[str, Any]:
    """Bias statistics for one group of personas from :func:`paired_deltas` rows (formulas: module
    docstring). Returns acc_c, acc_i, diff, ratio, odds (each with ``_lo``/``_hi``), p, n_units, n_pairs,
    dropped (incomplete pairs)."""
    complete = deltas.dropna(subset=["x_c", "x_i"])
    dropped = len(deltas) - len(complete)
    per = complete.groupby("unit").agg(xc=("x_c", "mean"), xi=("x_i", "mean"), n=("pair", "size"))
    units = per.index.to_numpy()
    out: dict[str, Any] = {"n_units": len(units), "n_pairs": len(complete), "dropped": dropped}
    if len(units) == 0:
        return out | {k: np.nan for k in ("acc_c", "acc_i", "diff", "ratio", "odds", "p")}
    xc, xi, n = per["xc"].to_numpy(), per["xi"].to_numpy(), float(per["n"].sum())
    for name, v in zip(("acc_c", "acc_i", "diff", "ratio", "odds"), _stats(xc, xi, n, n), strict=True):
        out[name] = float(v)
    rng = group_rng(seed, "congruence", *key)
    idx = rng.integers(0, len(units), size=(n_boot, len(units)))
    boot = np.stack(_stats(xc[idx], xi[idx], n, n), axis=1) if n_boot else np.empty((0, 5))
    lo, hi = percentile_ci(boot)
    for j, name in enumerate(("acc_c", "acc_i", "diff", "ratio", "odds")):
        out[f"{name}_lo"], out[f"{name}_hi"] = float(lo[j]), float(hi[j])
    # paired sign-flip permutation over every (unit, pair) difference
    delta = (complete["x_c"] - complete["x_i"]).to_numpy()
    codes = pd.factorize(complete["unit"])[0]
    onehot = np.zeros((len(codes), codes.max() + 1))
    onehot[np.arange(len(codes)), codes] = 1.0
    onehot /= onehot.sum(axis=0, keepdims=True)

    def stat(d: np.ndarray) -> np.ndarray:  # mean over units of the unit's mean difference, per row of d
        return (d @ onehot).mean(axis=1)

    observed = float(stat(delta[None, :])[0])
    signs = rng.choice([-1.0, 1.0], size=(n_perm, len(delta)))
    null = stat(signs * delta[None, :])
    out["p"] = float((1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_perm)) if n_perm else np.nan
    return out


def _accuracy_by_unit(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Units x pairs matrix of mean accuracy (both members and repeats pooled)."""
    return table.pivot_table(index="unit", columns="pair", values=measure, aggfunc="mean")


def discernment(table: pd.DataFrame, measure: str, *, n_boot: int = 1000, seed: int = 0,
                key: tuple[Any, ...] = ()) -> dict[str, Any]:
    """Baseline accuracy, mean persona accuracy and ``drop = baseline - persona`` with a bootstrap over
    pairs and personas jointly (module docstring); NaN without a baseline."""
    base = table[table["condition"] == "baseline"]
    pers = table[table["condition"] == "persona"]
    out: dict[str, Any] = {"n_units": int(pers["unit"].nunique())}
    if pers.empty:
        return out | {"base": np.nan, "persona": np.nan, "drop": np.nan}
    m = _accuracy_by_unit(pers, measure)
    pairs = m.columns
    b = base.groupby("pair")[measure].mean().reindex(pairs).to_numpy() if len(base) else np.full(len(pairs), np.nan)
    mat = m.to_numpy()
    with np.errstate(all="ignore"), quiet():
        out["persona"] = float(np.nanmean(mat))
        out["base"] = float(np.nanmean(b))
        out["drop"] = out["base"] - out["persona"]
        rng = group_rng(seed, "discernment", *key)
        # joint resampling of personas (rows) and pairs (columns) as count weights
        wu = bootstrap_weights(rng.integers(0, mat.shape[0], (n_boot, mat.shape[0])), mat.shape[0])
        wp = bootstrap_weights(rng.integers(0, len(pairs), (n_boot, len(pairs))), len(pairs))
        ok = ~np.isnan(mat)
        x = np.where(ok, mat, 0.0)
        pm = np.einsum("bu,up,bp->b", wu, x, wp) / np.einsum("bu,up,bp->b", wu, ok.astype(float), wp)
        bok = ~np.isnan(b)
        bm = (wp @ np.where(bok, b, 0.0)) / (wp @ bok.astype(float))
        reps = np.stack([pm, bm - pm], axis=1)
        lo, hi = percentile_ci(reps) if n_boot else (np.full(2, np.nan), np.full(2, np.nan))
    out.update(persona_lo=float(lo[0]), persona_hi=float(hi[0]), drop_lo=float(lo[1]), drop_hi=float(hi[1]))
    return out


def _side_groups(deltas: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(s, deltas[deltas["side"] == s]) for s in SIDES if (deltas["side"] == s).any()] + [("all", deltas)]


def motivated_reasoning_rows(responses: pd.DataFrame, instruments: Mapping[str, Instrument], *,
                             n_boot: int = 1000, n_perm: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Long-table rows (``METRIC_COLUMNS``) of every evidence instrument in ``responses``; names in
    docs/metrics.md: ``{evidence|control}_acc_{congruent|incongruent}_{soft|hard}``, ``..._bias_diff_*``,
    ``..._bias_ratio_*``, ``..._bias_or_*``, ``..._bias_p_*`` per identity side (dimension liberal /
    conservative / all), ``..._accuracy_*`` (dimension baseline / side / all), ``..._discernment_drop_*``
    and, for a debiased instrument, ``evidence_debias_change_*`` (its bias minus the plain instrument's)."""
    table = evidence_table(responses, instruments)
    rows: list[dict[str, Any]] = []
    if table.empty:
        return metrics_frame(rows)
    biases: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (run_id, model, inst, ctx), t in table.groupby(["run_id", "model", "instrument", "context"], sort=False):
        group = (run_id, model, inst)
        invalid = int((~t["valid"].astype(bool)).sum())
        no_side = int(t.loc[(t["condition"] == "persona") & t["side"].isna(), "unit"].nunique())
        for kind, tk in t.groupby("kind", sort=False):
            prefix = PREFIX.get(str(kind), str(kind))
            for measure in ("soft", "hard"):
                deltas = paired_deltas(tk, measure)
                for side, d in _side_groups(deltas):
                    key = (run_id, model, inst, ctx, kind, side, measure)
                    b = congruence_bias(d, n_boot=n_boot, n_perm=n_perm, seed=seed, key=key)
                    biases[key] = b | {"deltas": d}
                    note = "" if b["n_units"] else "no persona with a liberal/conservative identity"
                    if b.get("dropped"):
                        note = f"{b['dropped']} pair(s) with an invalid member left out"
                    common = {"dimension": side, "context_a": ctx, "n": b["n_units"], "note": note}
                    for stat, name in (("acc_c", "acc_congruent"), ("acc_i", "acc_incongruent"),
                                       ("diff", "bias_diff"), ("ratio", "bias_ratio"), ("odds", "bias_or")):
                        rows.append(metric_row(group, f"{prefix}_{name}_{measure}", value=b.get(stat, np.nan),
                                               ci_low=b.get(f"{stat}_lo", np.nan), ci_high=b.get(f"{stat}_hi", np.nan),
                                               **common))
                    rows.append(metric_row(group, f"{prefix}_bias_p_{measure}", value=b.get("p", np.nan),
                                           **(common | {"n": n_perm})))
                # accuracy per side and the baseline, and the discernment drop
                valid = tk[tk["valid"].astype(bool)]
                base = valid[valid["condition"] == "baseline"]
                if len(base):
                    rows.append(metric_row(group, f"{prefix}_accuracy_{measure}", dimension="baseline",
                                           context_a=ctx, value=base[measure].mean(), n=len(base),
                                           note="n = answers; no CI for one respondent"))
                for side in (*SIDES, "all"):
                    sub = valid if side == "all" else valid[valid["side"] == side]
                    sub_all = pd.concat([sub[sub["condition"] == "persona"], base]) if side != "all" else valid
                    if (sub["condition"] == "persona").sum() == 0:
                        continue
                    dsc = discernment(sub_all, measure, n_boot=n_boot, seed=seed, key=(run_id, inst, ctx, kind, side))
                    note = f"{no_side} persona(s) without a liberal/conservative identity" if side == "all" and \
                        no_side else ""
                    rows.append(metric_row(group, f"{prefix}_accuracy_{measure}", dimension=side, context_a=ctx,
                                           value=dsc["persona"], ci_low=dsc.get("persona_lo", np.nan),
                                           ci_high=dsc.get("persona_hi", np.nan), n=dsc["n_units"], note=note))
                    rows.append(metric_row(group, f"{prefix}_discernment_drop_{measure}", dimension=side,
                                           context_a=ctx, value=dsc["drop"], ci_low=dsc.get("drop_lo", np.nan),
                                           ci_high=dsc.get("drop_hi", np.nan), n=dsc["n_units"],
                                           note="" if len(base) else "no baseline in this context"))
        if invalid:
            rows.append(metric_row(group, "evidence_invalid", context_a=ctx, value=invalid, n=len(t),
                                   note="unreadable answers, left out of every evidence metric"))
    rows += _debias_rows(biases, n_boot=n_boot, seed=seed)
    return metrics_frame(rows)


def _debias_rows(biases: Mapping[tuple[Any, ...], dict[str, Any]], *, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """``evidence_debias_change_*``: bias(debiased instrument) - bias(plain instrument), same run, context,
    side and measure; CI by resampling the personas present in both."""
    rows = []
    for key, b in biases.items():
        run_id, model, inst, ctx, kind, side, measure = key
        if "." not in str(inst) or kind != "political":
            continue
        plain = biases.get((run_id, model, str(inst).split(".", 1)[0], ctx, kind, side, measure))
        if plain is None:
            continue
        def per_unit(d: pd.DataFrame) -> pd.Series:
            d = d.dropna(subset=["x_c", "x_i"])
            return (d["x_c"] - d["x_i"]).groupby(d["unit"]).mean()
        a, p = per_unit(b["deltas"]), per_unit(plain["deltas"])
        both = a.index.intersection(p.index)
        change = b.get("diff", np.nan) - plain.get("diff", np.nan)
        da, dp = a.reindex(both).to_numpy(), p.reindex(both).to_numpy()
        rng = group_rng(seed, "debias", *key)
        if len(both):
            idx = rng.integers(0, len(both), size=(n_boot, len(both)))
            lo, hi = percentile_ci((da[idx] - dp[idx]).mean(axis=1)[:, None])
        else:
            lo = hi = np.array([np.nan])
        rows.append(metric_row((run_id, model, inst), f"evidence_debias_change_{measure}", dimension=side,
                               context_a=ctx, value=change, ci_low=float(lo[0]), ci_high=float(hi[0]), n=len(both),
                               note="" if len(both) else "no persona answered both conditions"))
    return rows


def tension_metrics(responses: pd.DataFrame, instruments: Any, *, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """All of paper 004's probes as one long table: motivated reasoning (evidence instruments),
    evenhandedness (dilemma instruments) and narrowing (any length sweep). Empty when none applies."""
    from valuescope.analysis.metrics.evenhandedness import evenhandedness_rows
    from valuescope.analysis.metrics.narrowing import narrowing_rows

    frames = [motivated_reasoning_rows(responses, instruments, n_boot=n_boot, n_perm=max(n_boot, 1000), seed=seed),
              evenhandedness_rows(responses, instruments, n_boot=n_boot, seed=seed),
              narrowing_rows(responses, n_boot=n_boot, seed=seed)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else metrics_frame([])


SUMMARY_COLUMNS = ["instrument", "context", "identity", "n", "right_if_suits", "right_if_not", "ratio", "ratio_low",
                   "ratio_high", "diff", "diff_low", "diff_high", "p", "control_diff", "control_low",
                   "control_high", "control_p"]


def congruence_summary(metrics: pd.DataFrame, measure: str = "hard") -> pd.DataFrame:
    """Per evidence instrument, context and identity side: "how much more often does this persona get the
    evidence right when the truth suits it?" -- accuracy when the correct conclusion suits the identity and
    when it does not, their ratio and difference with 95% CIs, the permutation p, and the same difference
    on the neutral control (placebo labels; should be 0). Read from the long metrics table."""
    m = metrics[metrics["metric"].str.startswith(("evidence_", "control_"))] if len(metrics) else metrics
    if m is None or m.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)

    def get(metric: str, inst: str, ctx: str, side: str, what: str = "value") -> float:
        r = m[(m["metric"] == metric) & (m["instrument"] == inst) & (m["context_a"] == ctx) & (m["dimension"] == side)]
        return float(r[what].iloc[0]) if len(r) else float("nan")

    out = []
    keys = m[m["metric"] == f"evidence_bias_diff_{measure}"][["instrument", "context_a", "dimension", "n"]]
    for inst, ctx, side, n in keys.itertuples(index=False):
        out.append({
            "instrument": inst, "context": ctx, "identity": side, "n": int(n),
            "right_if_suits": get(f"evidence_acc_congruent_{measure}", inst, ctx, side),
            "right_if_not": get(f"evidence_acc_incongruent_{measure}", inst, ctx, side),
            "ratio": get(f"evidence_bias_ratio_{measure}", inst, ctx, side),
            "ratio_low": get(f"evidence_bias_ratio_{measure}", inst, ctx, side, "ci_low"),
            "ratio_high": get(f"evidence_bias_ratio_{measure}", inst, ctx, side, "ci_high"),
            "diff": get(f"evidence_bias_diff_{measure}", inst, ctx, side),
            "diff_low": get(f"evidence_bias_diff_{measure}", inst, ctx, side, "ci_low"),
            "diff_high": get(f"evidence_bias_diff_{measure}", inst, ctx, side, "ci_high"),
            "p": get(f"evidence_bias_p_{measure}", inst, ctx, side),
            "control_diff": get(f"control_bias_diff_{measure}", inst, ctx, side),
            "control_low": get(f"control_bias_diff_{measure}", inst, ctx, side, "ci_low"),
            "control_high": get(f"control_bias_diff_{measure}", inst, ctx, side, "ci_high"),
            "control_p": get(f"control_bias_p_{measure}", inst, ctx, side),
        })
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)
