"""Synthetic tables of the tidy-responses and per-persona-scores shapes, for metric tests and timing.

Built by hand from the documented column contracts (``valuescope.analysis.tidy`` docstring; scoring's columns);
the probabilities are drawn from a seeded Dirichlet so the numbers are reproducible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _n_msg(ctx: str) -> int:
    return int(ctx.split("@")[1]) if "@" in ctx else 0


def synth_responses(
    n_personas: int = 20, dims: tuple[str, ...] = ("Harm", "Fairness", "Purity"), items_per_dim: int = 4,
    k: int = 6, contexts: tuple[str, ...] = ("none",), set_seeds: tuple[int, ...] = (111,),
    repeats: int = 1, baseline: bool = True, seed: int = 0, run_id: str = "r1", model: str = "m",
    instrument: str = "mfq30",
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    item_centre = {f"{d}_{i}": rng.integers(0, k) for d in dims for i in range(items_per_dim)}
    recs = []
    units = [("baseline", "baseline", None)] if baseline else []
    for s in set_seeds:
        units += [("persona", f"p{s}-{j:03d}", s) for j in range(n_personas)]
    for cond, pid, sseed in units:
        shift = 0 if cond == "baseline" else int(rng.integers(-1, 2))
        religion = ["none", "christian", "muslim"][hash(pid) % 3]
        age = 20 + (sum(map(ord, pid)) % 60)
        for ctx in contexts:
            for rep in range(repeats):
                for item, c in item_centre.items():
                    alpha = np.full(k, 0.3)
                    alpha[int(np.clip(c + shift, 0, k - 1))] += 5.0
                    p = rng.dirichlet(alpha)
                    rec = {
                        "run_id": run_id, "model": model, "condition": cond, "persona_id": pid,
                        "set_seed": sseed, "attr_religion": None if cond == "baseline" else religion,
                        "attr_age": None if cond == "baseline" else age, "context": ctx,
                        "topic": ctx.split("@")[0], "n_messages": _n_msg(ctx),
                        "repeat": rep, "instrument": instrument, "item_id": item,
                        "dimension": item.split("_")[0],
                        "k": k, **{f"p_{i + 1}": p[i] for i in range(k)},
                        "argmax": int(np.argmax(p)) + 1, "argmax_value": float(np.argmax(p) + 1),
                        "expected": float(np.dot(p, np.arange(1, k + 1))), "valid": True,
                    }
                    recs.append(rec)
    df = pd.DataFrame.from_records(recs)
    df["argmax"] = df["argmax"].astype("Int64")
    df["set_seed"] = df["set_seed"].astype("Int64")
    return df


def synth_scores(
    n_personas: int = 30,
    values: tuple[str, ...] = ("UN", "BE", "CO", "TR", "SE", "PO", "AC", "HE", "ST", "SD"),
    contexts: tuple[str, ...] = ("poem@3", "joke@3", "chess@3"), repeats: int = 2, noise: float = 0.5,
    baseline_repeats: int = 4, seed: int = 0, run_id: str = "r1", model: str = "m", instrument: str = "pvq40",
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    recs = []
    true = rng.normal(size=(n_personas, len(values)))
    neutral = rng.normal(size=len(values))

    def add(cond: str, pid: str, prof: np.ndarray, ctx: str, rep: int, gender: str) -> None:
        for v, val in enumerate(values):
            raw = float(prof[v] + 3.5)
            recs.append({
                "run_id": run_id, "model": model, "condition": cond, "persona_id": pid, "population": "synth",
                "set_seed": None, "gender": gender, "attr_gender": gender if cond == "persona" else None,
                "context": ctx, "topic": ctx.split("@")[0], "n_messages": _n_msg(ctx),
                "repeat": rep, "instrument": instrument, "level": "basic", "dimension": val,
                "score": float(prof[v]),
                "raw_score": raw, "n_items": 4, "catch_failed": False,
            })

    for j in range(n_personas):
        g = "male" if j % 2 else "female"
        for ctx in contexts:
            for rep in range(repeats):
                add("persona", f"c{j:02d}", true[j] + rng.normal(scale=noise, size=len(values)), ctx, rep, g)
    for ctx in ("none", *contexts):
        for rep in range(baseline_repeats):
            add("baseline", "baseline", neutral + rng.normal(scale=noise, size=len(values)), ctx, rep, "NA")
    df = pd.DataFrame.from_records(recs)
    df["set_seed"] = df["set_seed"].astype("Int64")
    return df


def hand_rows(specs: list[tuple], *, k: int = 6, run_id: str = "r1", model: str = "m",
              instrument: str = "mfq30") -> pd.DataFrame:
    """A responses table from hand-written rows ``(condition, persona_id, context, item_id, dimension,
    probs_or_None[, extra dict])``; probs None = an invalid (unreadable) answer."""
    recs = []
    for spec in specs:
        cond, pid, ctx, item, dim, probs = spec[:6]
        extra = spec[6] if len(spec) > 6 else {}
        valid = probs is not None
        p = np.asarray(probs if valid else [np.nan] * k, dtype=float)
        rec = {
            "run_id": run_id, "model": model, "condition": cond, "persona_id": pid, "set_seed": None,
            "context": ctx, "topic": ctx.split("@")[0], "n_messages": _n_msg(ctx),
            "repeat": 0, "instrument": instrument, "item_id": item, "dimension": dim, "k": k,
            **{f"p_{i + 1}": p[i] for i in range(k)},
            "argmax": int(np.argmax(p)) + 1 if valid else pd.NA,
            "argmax_value": float(np.argmax(p) + 1) if valid else np.nan,
            "expected": float(np.dot(p, np.arange(1, k + 1))) if valid else np.nan, "valid": valid,
        }
        rec.update(extra)
        recs.append(rec)
    df = pd.DataFrame.from_records(recs)
    df["argmax"] = df["argmax"].astype("Int64")
    df["set_seed"] = df["set_seed"].astype("Int64")
    return df


def hand_scores(profiles: dict[tuple[str, str, int], list[float]], values: list[str], *,
                condition_of: dict[str, str] | None = None, instrument: str = "pvq40", level: str = "basic",
                attrs: dict[str, dict[str, object]] | None = None) -> pd.DataFrame:
    """A scores table from ``{(persona_id, context, repeat): [score per value]}``; persona "baseline"
    gets the baseline condition."""
    recs = []
    for (pid, ctx, rep), prof in profiles.items():
        cond = (condition_of or {}).get(pid, "baseline" if pid == "baseline" else "persona")
        for v, s in zip(values, prof, strict=True):
            rec = {"run_id": "r1", "model": "m", "condition": cond, "persona_id": pid, "population": "hand",
                   "set_seed": None, "gender": None, "context": ctx, "topic": ctx.split("@")[0],
                   "n_messages": _n_msg(ctx), "repeat": rep,
                   "instrument": instrument, "level": level, "dimension": v, "score": float(s),
                   "raw_score": float(s), "n_items": 4, "catch_failed": False}
            for a, by_pid in (attrs or {}).items():
                rec[f"attr_{a}"] = by_pid.get(pid)
            recs.append(rec)
    df = pd.DataFrame.from_records(recs)
    df["set_seed"] = df["set_seed"].astype("Int64")
    return df


#: a letter-biased model's letter probabilities (the issue's simulation: most mass on letter C)
LETTER_BIAS = (0.10, 0.12, 0.45, 0.13, 0.10, 0.10)


def cyclic_orders(k: int = 6) -> list[tuple[int, ...]]:
    """The k cyclic shifts of the options: letter j shows option (j + s) mod k. Every letter shows every
    option once over the set (a Latin square), and no shift but 0 is its own inverse."""
    return [tuple((j + s) % k for j in range(k)) for s in range(k)]


def letter_model_responses(
    n_personas: int = 30, n_items: int = 6, *, persona_orders: list[tuple[int, ...]],
    baseline_orders: list[tuple[int, ...]], letter: tuple[float, ...] = LETTER_BIAS,
    content: tuple[float, ...] | None = None, w_letter: float = 1.0, concentration: float | None = None,
    persona_shift: float = 0.0, seed: int = 0, dimension: str = "D", noise: str = "answer",
) -> pd.DataFrame:
    """Answers of a persona-blind model whose letter distribution is ``w * letter + (1 - w) * content``
    (content in scale order, mapped to letters through the option order), optionally Dirichlet noise
    around it (``concentration``) and a persona effect that moves ``persona_shift`` of the content mass
    to the top option. Persona i is asked under ``persona_orders[i % len]``; the baseline once under each
    of ``baseline_orders``. Letter j shows option ``order[j]``; ``p_*`` are in scale order.
    ``noise``: ``"answer"`` draws the Dirichlet noise for every answer afresh (an order adds noise of its own);
    ``"query"`` draws it once per respondent and item, on the content, so one respondent's answers to an item
    under several orders share it (the synthetic backend's query noise; what steerability's test assumes)."""
    rng = np.random.default_rng(seed)
    k = len(letter)
    lam = np.asarray(letter, float)
    con = np.full(k, 1 / k) if content is None else np.asarray(content, float)
    units = [("baseline", "baseline", o) for o in baseline_orders]
    units += [("persona", f"p{i:03d}", persona_orders[i % len(persona_orders)]) for i in range(n_personas)]
    recs = []
    shared_noise: dict[tuple[str, int], np.ndarray] = {}
    for cond, pid, order in units:
        o = np.asarray(order)
        c = con.copy()
        if cond == "persona" and persona_shift:
            c = (1 - persona_shift) * c
            c[-1] += persona_shift
        mean_letter = w_letter * lam + (1 - w_letter) * c[o]  # letter j shows option o[j]
        for it in range(n_items):
            if noise == "query" and concentration:
                shared = shared_noise.setdefault((pid, it), rng.dirichlet(concentration * c))
                pl = w_letter * lam + (1 - w_letter) * shared[o]
            else:
                pl = rng.dirichlet(concentration * mean_letter) if concentration else mean_letter
            scale = np.empty(k)
            scale[o] = pl
            arg = int(np.argmax(scale))
            recs.append({
                "run_id": "r1", "model": "m", "condition": cond, "persona_id": pid, "set_seed": None,
                "context": "none", "repeat": 0, "instrument": "inst", "item_id": f"i{it}", "dimension": dimension,
                "k": k, "option_order": ",".join(map(str, order)), **{f"p_{i + 1}": scale[i] for i in range(k)},
                "argmax": arg + 1, "argmax_value": float(arg + 1),
                "expected": float(scale @ np.arange(1, k + 1)), "valid": True,
            })
    df = pd.DataFrame.from_records(recs)
    df["argmax"] = df["argmax"].astype("Int64")
    df["set_seed"] = df["set_seed"].astype("Int64")
    return df
