"""Synthetic but realistic runs for the report tests.

A small study built the way the real pipeline builds it: stored rows -> ``valuescope.tidy.build_responses``
with real ``Instrument`` objects (two instruments, 6-point scales, a catch item), personas with WVS-like
attributes, a baseline, conversations on two topics at two lengths, two repeats. Answer distributions come
from a latent score per (persona, dimension) = model default + attribute effect + noise. Scores, metrics
and effects are then computed from those answers with the published formulas, so every number in the
report is a real function of the answers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from valuescope.report.data import RunData
from valuescope.tidy import build_responses
from valuescope.types import Instrument, Item, Message, Part, Scale

SCALE = Scale(labels=tuple(f"option {i}" for i in range(1, 7)), values=(1, 2, 3, 4, 5, 6))
CONTEXTS = [None, ("poem", 2), ("chess", 2), ("poem", 6), ("chess", 6)]
SCRIPT = "<script>alert(1)</script>"


def _instrument(iid: str, dims: list[str], catch: bool) -> Instrument:
    part = Part(id="p1", instructions="Rate each statement.", stem="{item}", scale=SCALE)
    items = [
        Item(id=f"{iid}_{d}_{j}", part="p1", text=f"Statement about {d} #{j}", dimension=d)
        for d in dims
        for j in (1, 2)
    ]
    if catch:
        items.append(Item(id=f"{iid}_catch", part="p1", text="Good at math?", dimension=None, catch=True))
    return Instrument(
        id=iid,
        name=iid.upper(),
        citation="synthetic",
        licence="test",
        parts={"p1": part},
        items=tuple(items),
        dimensions=tuple(dims),
    )


INSTRUMENTS = {
    "mfq30": _instrument("mfq30", ["harm", "fairness", "ingroup", "authority", "purity"], catch=True),
    "pvq40": _instrument("pvq40", ["security", "tradition", "benevolence", "self_direction"], catch=False),
}
ATTRS = {"religion": ["none", "christian", "muslim"], "age": ["18-29", "30-49", "50+"]}


def _personas(n: int, rng: np.random.Generator, script_in_text: bool) -> list[dict]:
    out = [{"id": "baseline", "kind": "baseline", "population": "baseline"}]
    for i in range(n):
        attrs = {k: str(rng.choice(v)) for k, v in ATTRS.items()}
        gender = "female" if i % 2 else "male"
        out.append(
            {
                "id": f"wvs111-{i:03d}",
                "kind": "wvs",
                "population": "wvs:seed=111",
                "set_seed": 111,
                "gender": gender,
                "attributes": attrs,
                "description": f"You are a {gender} aged {attrs['age']}, religion: {attrs['religion']}.",
            }
        )
    if script_in_text:
        out[1]["description"] += " " + SCRIPT
    return out


def _probs(mu: float, sharp: float) -> np.ndarray:
    logits = -sharp * (np.arange(1, 7) - mu) ** 2
    p = np.exp(logits - logits.max())
    return p / p.sum()


def _rows(
    run_id: str,
    model: str,
    personas: list[dict],
    rng: np.random.Generator,
    sharp: float,
    steer: float,
    script_raw: bool,
) -> list[dict]:
    rows = []
    default = {d: rng.uniform(2.0, 5.5) for inst in INSTRUMENTS.values() for d in inst.dimensions}
    for p in personas:
        eff = {d: 0.0 if p["kind"] == "baseline" else steer * rng.normal(0, 0.8) for d in default}
        if p.get("attributes", {}).get("religion") in ("christian", "muslim"):
            eff["tradition"] = eff.get("tradition", 0) + 1.5 * steer
            eff["authority"] = eff.get("authority", 0) + 1.0 * steer
        order = list(rng.permutation(6)) if p["kind"] != "baseline" else list(range(6))
        for c_i, ctx in enumerate(CONTEXTS):
            context = {"topic": None} if ctx is None else {"topic": ctx[0], "n_messages": ctx[1]}
            drift = 0 if ctx is None else ctx[1] * 0.08
            for rep in (0, 1):
                for inst in INSTRUMENTS.values():
                    for pos, item in enumerate(inst.items):
                        if item.dimension is None:
                            mu = 1.2
                        else:
                            mu = default[item.dimension] + eff[item.dimension] * (1 - drift)
                            mu += rng.normal(0, 0.35)
                        scale_p = _probs(float(np.clip(mu, 1, 6)), sharp)
                        letter_p = [float(scale_p[order[j]]) * 0.97 for j in range(6)]
                        valid = rng.random() > 0.01
                        raw = None
                        if not valid:
                            raw = "I cannot answer that as an AI."
                        if script_raw and not rows:
                            valid, raw = False, f"Sure! {SCRIPT} (G)"
                        key = f"{run_id}:{p['id']}:{c_i}:{rep}:{item.id}"
                        rows.append(
                            {
                                "run_id": run_id,
                                "model": model,
                                "persona_json": json.dumps(p),
                                "context_json": json.dumps(context),
                                "option_order": json.dumps([int(o) for o in order]),
                                "instrument": inst.id,
                                "part": item.part,
                                "item_id": item.id,
                                "dimension": item.dimension,
                                "wording": None,
                                "position": pos,
                                "seed": 0,
                                "repeat": rep,
                                "valid": valid,
                                "probs": json.dumps(letter_p) if valid else None,
                                "outside_mass": 0.03,
                                "method": "logprobs",
                                "error": None if valid else "no letter",
                                "raw": raw,
                                "key": key,
                            }
                        )
    return rows


def _scores(resp: pd.DataFrame) -> pd.DataFrame:
    r = resp[resp["valid"] & resp["dimension"].notna()]
    attr = [c for c in r.columns if c.startswith("attr_")]
    keys = [
        "run_id",
        "model",
        "condition",
        "persona_id",
        "population",
        "set_seed",
        "gender",
        *attr,
        "context",
        "topic",
        "n_messages",
        "repeat",
        "instrument",
        "dimension",
    ]
    s = (
        r.groupby(keys, dropna=False)
        .agg(score=("expected", "mean"), n_items=("expected", "size"))
        .reset_index()
    )
    s["raw_score"] = s["score"]
    s["level"] = "dimension"
    s["catch_failed"] = False
    return s


def _jsd(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a[a > 0] * np.log2(a[a > 0] / b[a > 0])))  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def _inertia(p: np.ndarray) -> float:
    q = p[p > 0]
    return 1 - float(-(q * np.log2(q)).sum()) / math.log2(len(p))


def _metrics(
    resp: pd.DataFrame, scores: pd.DataFrame, run_id: str, model: str, rng: np.random.Generator
) -> pd.DataFrame:
    rows = []

    def add(inst, metric, dim, value, lo=np.nan, hi=np.nan, a=None, b=None, n=None):
        rows.append(
            {
                "run_id": run_id,
                "model": model,
                "instrument": inst,
                "metric": metric,
                "dimension": dim,
                "context_a": a,
                "context_b": b,
                "value": value,
                "ci_low": lo,
                "ci_high": hi,
                "n": n,
                "note": None,
            }
        )

    pcols = [f"p_{i}" for i in range(1, 7)]
    r = resp[resp["valid"] & resp["dimension"].notna() & (resp["context"] == "none") & (resp["repeat"] == 0)]
    for (inst, dim), g in r.groupby(["instrument", "dimension"]):
        per = g[g["condition"] == "persona"]
        base = g[g["condition"] == "baseline"][pcols].mean().to_numpy()
        ids = per["persona_id"].unique()
        by = {pid: per[per["persona_id"] == pid][pcols].to_numpy() for pid in ids}
        boot_i, boot_s = [], []
        for _ in range(100):
            sample = np.vstack([by[pid] for pid in rng.choice(ids, len(ids))]).mean(axis=0)
            boot_i.append(_inertia(sample))
            boot_s.append(_jsd(base, sample))
        pooled = per[pcols].mean().to_numpy()
        add(inst, "inertia_soft", dim, _inertia(pooled), *np.percentile(boot_i, [2.5, 97.5]), n=len(ids))
        add(
            inst, "steerability_jsd", dim, _jsd(base, pooled), *np.percentile(boot_s, [2.5, 97.5]), n=len(ids)
        )
        top = per["argmax"].value_counts(normalize=True)
        add(inst, "top1_share", dim, float(top.iloc[0]), n=len(per))
    s = scores[scores["condition"] == "persona"]
    for inst, g in s.groupby("instrument"):
        wide = {
            c: h[h["repeat"] == 0].pivot_table(index="persona_id", columns="dimension", values="score")
            for c, h in g.groupby("context")
        }
        ctxs = sorted(wide)
        for i, a in enumerate(ctxs):
            for b in ctxs[i + 1 :]:
                wa, wb = wide[a].align(wide[b], join="inner")
                for dim in wa.columns:
                    rho = stats.spearmanr(wa[dim], wb[dim]).statistic
                    add(inst, "rank_order", dim, float(rho), a=a, b=b, n=len(wa))
                ips = [stats.spearmanr(wa.loc[pid], wb.loc[pid]).statistic for pid in wa.index]
                v = float(np.nanmean(ips))
                add(inst, "ipsative", None, v, v - 0.1, min(1.0, v + 0.1), a=a, b=b, n=len(ips))
        base_prof = scores[
            (scores["condition"] == "baseline")
            & (scores["instrument"] == inst)
            & (scores["context"] == "none")
            & (scores["repeat"] == 0)
        ].set_index("dimension")["score"]
        for c in ctxs:
            diff = wide[c].sub(base_prof.reindex(wide[c].columns), axis=1)
            add(
                inst,
                "distance_to_neutral",
                None,
                float(np.sqrt((diff**2).sum(axis=1)).mean()),
                a=c,
                n=len(diff),
            )
        for dim, h in g[g["context"] == "none"].groupby("dimension"):
            per = h.groupby("persona_id")["score"]
            add(inst, "var_within", dim, float(per.var(ddof=1).mean()))
            add(inst, "var_between", dim, float(per.mean().var(ddof=1)))
    return pd.DataFrame(rows)


def _effects(scores: pd.DataFrame) -> pd.DataFrame:
    """The real Cohen's d grid of the metrics package (same columns as a real run's)."""
    from valuescope.metrics import effects_grid

    return effects_grid(scores, value_col="score")


def make_run(
    run_id: str = "run-a",
    model: str = "smollm2-135m",
    seed: int = 1,
    n_personas: int = 14,
    sharp: float = 1.2,
    steer: float = 1.0,
    script: bool = False,
    reduced: str | None = None,
) -> RunData:
    """One synthetic run. ``script=True`` puts ``<script>alert(1)</script>`` in a raw answer, a persona
    description and a conversation message."""
    rng = np.random.default_rng(seed)
    personas = _personas(n_personas, rng, script)
    resp = build_responses(_rows(run_id, model, personas, rng, sharp, steer, script), INSTRUMENTS)
    scores = _scores(resp)
    conv = [
        Message("system", personas[1]["description"]),
        Message("user", "Write a poem about the sea."),
        Message("assistant", "The sea is wide " + (SCRIPT if script else "and grey") + "."),
    ]
    invalid = int((~resp["valid"]).sum())
    return RunData(
        run_id=run_id,
        model=model,
        study={
            "name": "synthetic",
            "models": [{"name": model, "backend": "llamacpp"}],
            "instruments": [{"name": "mfq30"}, {"name": "pvq40"}],
            "repeats": 2,
            "contexts": {"topics": ["none", "poem", "chess"], "n_messages": [2, 6]},
        },
        responses=resp,
        scores=scores,
        metrics=_metrics(resp, scores, run_id, model, rng),
        effects=_effects(scores),
        example_prompt="<|im_start|>system\n" + personas[1]["description"] + "<|im_end|>\n<|im_start|>user\n"
        "Statement about harm #1\nA. option 1\nB. option 2<|im_end|>\nAnswer: (",
        counts={"queries": len(resp), "invalid": invalid, "outside_mass": 0.03},
        conversations=[(personas[1]["id"], "poem@2", conv)],
        persona_texts={p["id"]: p["description"] for p in personas if p.get("description")},
        reduced=reduced,
    )
