"""Synthetic but realistic runs for the report tests.

A small study built the way the real pipeline builds it: stored rows -> ``valuescope.analysis.tidy.build_responses``
with real ``Instrument`` objects (two instruments, 6-point scales, a catch item), personas with WVS-like
attributes, a baseline, conversations on two topics at two lengths, two repeats. Answer distributions come
from a latent score per (persona, dimension) = model default + attribute effect + noise. Scores, metrics
and effects are then computed from those answers by the real scoring and metrics code, so every number in
the report is a real function of the answers.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from valuescope.analysis.tidy import build_responses
from valuescope.core.types import Instrument, Item, Message, Part, Scale
from valuescope.output.report.data import RunData

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
    """The real per-persona scores (valuescope.analysis.scoring)."""
    from valuescope.analysis.scoring import score_personas

    return score_personas(resp, INSTRUMENTS)


def _metrics(resp: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The real long metrics table (valuescope.analysis.metrics.compute_metrics), as a real run's report reads it."""
    from valuescope.analysis.metrics import compute_metrics

    return compute_metrics(resp, scores, n_boot=40, seed=0)


def _effects(scores: pd.DataFrame) -> pd.DataFrame:
    """The real Cohen's d grid of the metrics package (same columns as a real run's)."""
    from valuescope.analysis.metrics import effects_grid

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
        metrics=_metrics(resp, scores),
        effects=_effects(scores),
        example_prompt="<|im_start|>system\n" + personas[1]["description"] + "<|im_end|>\n<|im_start|>user\n"
        "Statement about harm #1\nA. option 1\nB. option 2<|im_end|>\nAnswer: (",
        counts={"queries": len(resp), "invalid": invalid, "outside_mass": 0.03},
        conversations=[(personas[1]["id"], "poem@2", conv)],
        persona_texts={p["id"]: p["description"] for p in personas if p.get("description")},
        reduced=reduced,
    )
