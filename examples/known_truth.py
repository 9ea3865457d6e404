"""What the numbers mean: each headline metric measured on studies whose truth is known (docs/known_truth.md).

    python examples/known_truth.py

Three synthetic models, each answering a small study (40 WVS personas + baseline x MFQ-30 and PVQ-40, three
conversation topics, two repeats), measured with the real metric functions and printed beside the model's
truth (``valuescope.known_truth.truth``):

1. ``planted``: personas differ (persona_sd 1), drift across topics, run-to-run noise, an attribute effect;
2. ``persona-blind``: the persona changes nothing (only per-query noise);
3. ``letter-biased``: persona-blind, and half of every answer follows the letter shown, not the content,
   under option orders permuted per persona and under a fixed order (the other two: a fixed order).
"""

from __future__ import annotations

import pandas as pd

from valuescope.analysis.metrics import compute_metrics, effects_grid
from valuescope.analysis.scoring import score_personas
from valuescope.known_truth.simulate import prepare
from valuescope.known_truth.truth import truth_tables, with_truth
from valuescope.study.spec import study_from_dict
from valuescope.study.synthetic_spec import SyntheticSpec

STUDY = {"name": "known-truth", "report": False, "models": [{"name": "syn", "backend": "synthetic"}],
         "instruments": [{"name": "mfq30"}, {"name": "pvq40"}],
         "population": {"baseline": True, "sources": [{"kind": "wvs", "n": 40, "seeds": [111]}]},
         "contexts": {"topics": ["joke", "chess", "grammar"], "n_messages": [1]}, "repeats": 2}
BIAS = [0.10, 0.12, 0.45, 0.13, 0.10, 0.10]
MODELS = {
    "planted": SyntheticSpec(persona_sd=1.0, drift_sd=0.5, repeat_sd=0.4, query_sd=0.3, temperature=0.7,
                             baseline={"Harm": 1.5, "Fairness": 1.2, "Benevolence": 1.0, "Power": -0.8},
                             effects={"sex=Female": {"Harm": 0.6}}),
    "persona-blind": SyntheticSpec(persona_sd=0.0, query_sd=0.5, baseline={"Harm": 1.5, "Benevolence": 1.0}),
    "letter-biased": SyntheticSpec(persona_sd=0.0, query_sd=0.5, baseline={"Harm": 1.5, "Benevolence": 1.0},
                                   letter_bias=BIAS, letter_weight=0.5),
}
SHOW = [("mfq30", "inertia_soft", "Harm"), ("mfq30", "inertia_hard", "Harm"),
        ("mfq30", "steerability_jsd_soft", "Harm"), ("mfq30", "position_bias_soft", ""),
        ("pvq40", "rank_order", ""), ("pvq40", "ipsative", ""), ("pvq40", "icc", "Benevolence")]


def measure(spec: SyntheticSpec, option_order: str) -> pd.DataFrame:
    sim = prepare(study_from_dict({**STUDY, "option_order": option_order}))
    resp = sim.responses(spec)
    scores = score_personas(resp, sim.instruments)
    metrics = with_truth(compute_metrics(resp, scores, n_boot=200, seed=0), truth_tables(sim, spec, n_target=4000))
    rows = []
    for inst, metric, dim in SHOW:
        m = metrics[(metrics["instrument"] == inst) & (metrics["metric"] == metric) & (metrics["dimension"] == dim)]
        m = m[m["context_a"].isin(["all", "joke@1"])].iloc[0]
        p = metrics[(metrics["instrument"] == inst) & (metrics["metric"] == "steerability_p_soft")
                    & (metrics["dimension"] == dim) & (metrics["context_a"] == m["context_a"])]
        rows.append({"metric": f"{metric} {dim}".strip(), "truth": m["truth"], "measured": m["value"],
                     "ci": f"[{m['ci_low']:.3f}, {m['ci_high']:.3f}]",
                     "p": p["value"].iloc[0] if metric == "steerability_jsd_soft" and len(p) else float("nan"),
                     "note": m["note"]})
    grid = effects_grid(scores)
    cell = grid[(grid["instrument"] == "mfq30") & (grid["attribute"] == "sex") & (grid["level"] == "Female")
                & (grid["dimension"] == "Harm") & (grid["context"] == "joke@1")].iloc[0]
    truth = truth_tables(sim, spec, n_target=4000).effects
    t = truth[(truth["instrument"] == "mfq30") & (truth["attribute"] == "sex") & (truth["level"] == "Female")
              & (truth["dimension"] == "Harm") & (truth["context"] == "joke@1")]["d_true"].iloc[0]
    rows.append({"metric": "g sex=Female Harm", "truth": t, "measured": cell["g"], "ci": "", "p": cell["p"]})
    return pd.DataFrame(rows)


def main() -> None:
    for name, spec in MODELS.items():
        orders = ["permute-persona", "fixed"] if name == "letter-biased" else ["fixed"]
        for order in orders:
            print(f"\n### {name} (option_order: {order})\n")
            table = measure(spec, order)
            print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
            for row in table.itertuples(index=False):
                print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
