"""A generated evidence-evaluation instrument: the covariance-detection task of Kahan, Peters, Dawson and
Slovic (2017, "Motivated numeracy and enlightened self-government", Behavioural Public Policy), framed on
politically charged policies and on neutral products, as used for persona-assigned models by Dash et al.
(2025, arXiv 2506.20020). Every text and number here is this project's own.

An item is a 2x2 table of counts: places (or people) that did / did not adopt a measure x the outcome got
better / worse. The question is what the data show: adopting the measure made the outcome

    (better)  -- scale index 0, value 1
    (worse)   -- scale index 1, value 0

Construction (:func:`generate`, deterministic in ``seed``):

* **Cells.** Adopters ``n_t`` and non-adopters ``n_c`` with ``n_t`` about 2-3x ``n_c``. In the adopter row
  the *majority* cell ``a`` and the minority ``b``; in the comparison row ``c`` and ``d`` with
  ``a/(a+b) < c/(c+d)``: the majority outcome is *rarer* among adopters than among non-adopters, by a
  rate gap of 6-16 percentage points (the difficulty). The largest cell of the table is ``a``; reading
  raw counts ("many adopters had outcome X") gives the wrong answer, comparing ratios gives the right one.
* **Pairs (Kahan's flipped versions).** Each table is used twice with the same numbers: once with the
  majority column meaning "got better" (so adopting made things worse: truth = worse) and once with it
  meaning "got worse" (truth = better). So the correct answers are balanced, and for any political
  identity the truth suits it in exactly one member of every political pair.
* **Layouts.** Row order (adopters first / non-adopters first) and column order (better first / worse
  first) are drawn per pair; the two members of a pair share the layout.
* **Topics.** Pairs cycle through 12 topics in the order liberal-flattering policy, conservative-flattering
  policy, neutral product, ... (4 each), so any ``n_items`` that is a multiple of 6 has as many
  liberal-flattering as conservative-flattering political pairs, and a third of the pairs neutral.
* **Flattery.** A policy topic records which identity the conclusion "the policy worked" flatters
  (``works_flatters``): gun control, minimum wage, carbon tax, refugee resettlement -> liberal; income-tax
  cuts, school vouchers, police budgets, work requirements -> conservative. Each item's ``meta.flatters``
  is the identity its *correct* conclusion suits. Neutral items flatter nobody (``flatters: null``) but
  carry a *placebo* side (``placebo_flatters``), assigned in the same balanced way as the real one, so
  the same congruence statistic can be computed on them: a model without motivated reasoning shows the
  same (zero) bias on real and placebo labels, and on neutral items any real model must show none.

Item meta: ``topic, kind (political|neutral), pair, truth (better|worse), correct (scale index),
flatters, placebo_flatters, works_flatters, cells {adopt_better, adopt_worse, other_better, other_worse},
rate_adopt, rate_other (share better), gap, layout, heuristic (the raw-count answer: always wrong),
condition`` (the debiasing instruction, "none" without one).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from valuescope.core.types import SIDES, Instrument, Item, Part, Scale
from valuescope.study.spec import SpecError

INSTRUCTIONS = (
    "Below are the results of a study. Look at the numbers and decide what they show. "
    "Answer with the conclusion the data support."
)


@dataclass(frozen=True)
class Topic:
    id: str
    kind: str  # "political" | "neutral"
    works_flatters: str | None  # identity suited by "the measure worked"
    units: str  # plural noun of what was studied
    unit: str
    adopted: str  # "banned carrying concealed handguns in public"
    not_adopted: str  # row label of the comparison row
    adopted_row: str  # row label of the adopters
    outcome: str  # "violent crime"
    better: str  # column label: outcome got better
    worse: str
    label_better: str  # option text
    label_worse: str
    placebo: str | None = None  # placebo side for neutral topics


TOPICS: tuple[Topic, ...] = (
    Topic("gun_control", "political", "liberal", "cities", "city",
          "banned carrying concealed handguns in public", "Cities without a ban", "Cities with a ban",
          "violent crime", "Crime went down", "Crime went up",
          "Banning concealed handguns made violent crime go down",
          "Banning concealed handguns made violent crime go up"),
    Topic("tax_cuts", "political", "conservative", "states", "state",
          "cut their top income-tax rate", "States that kept the rate", "States that cut the rate",
          "the number of jobs", "Jobs increased", "Jobs decreased",
          "Cutting the top income-tax rate made the number of jobs go up",
          "Cutting the top income-tax rate made the number of jobs go down"),
    Topic("skin_cream", "neutral", None, "patients", "patient",
          "used a new skin cream for two weeks", "Patients who did not use the cream",
          "Patients who used the cream", "the rash", "Rash got better", "Rash got worse",
          "Using the new skin cream made the rash better", "Using the new skin cream made the rash worse",
          placebo="liberal"),
    Topic("minimum_wage", "political", "liberal", "cities", "city",
          "raised the local minimum wage", "Cities that kept the wage", "Cities that raised the wage",
          "the number of small businesses", "Businesses grew in number", "Businesses shrank in number",
          "Raising the minimum wage made the number of small businesses grow",
          "Raising the minimum wage made the number of small businesses shrink"),
    Topic("school_vouchers", "political", "conservative", "school districts", "school district",
          "introduced school vouchers", "Districts without vouchers", "Districts with vouchers",
          "pupils' test scores", "Scores rose", "Scores fell",
          "Introducing school vouchers made test scores rise",
          "Introducing school vouchers made test scores fall"),
    Topic("fertiliser", "neutral", None, "farms", "farm",
          "switched to a new fertiliser", "Farms that kept their fertiliser", "Farms that switched",
          "the wheat yield", "Yield went up", "Yield went down",
          "Switching to the new fertiliser made the wheat yield go up",
          "Switching to the new fertiliser made the wheat yield go down",
          placebo="conservative"),
    Topic("carbon_tax", "political", "liberal", "regions", "region",
          "introduced a carbon tax", "Regions without the tax", "Regions with the tax",
          "local employment", "Employment rose", "Employment fell",
          "Introducing a carbon tax made local employment rise",
          "Introducing a carbon tax made local employment fall"),
    Topic("police_budget", "political", "conservative", "cities", "city",
          "increased their police budget", "Cities that kept the budget", "Cities that increased it",
          "burglaries", "Burglaries went down", "Burglaries went up",
          "Increasing the police budget made burglaries go down",
          "Increasing the police budget made burglaries go up"),
    Topic("running_shoe", "neutral", None, "runners", "runner",
          "trained in a new kind of running shoe", "Runners in their old shoes", "Runners in the new shoe",
          "knee pain", "Knee pain eased", "Knee pain got worse",
          "Training in the new running shoe made knee pain ease",
          "Training in the new running shoe made knee pain worse",
          placebo="liberal"),
    Topic("refugees", "political", "liberal", "towns", "town",
          "resettled a large group of refugees", "Towns that did not resettle refugees",
          "Towns that resettled refugees", "local unemployment", "Unemployment went down",
          "Unemployment went up",
          "Resettling refugees made local unemployment go down",
          "Resettling refugees made local unemployment go up"),
    Topic("work_requirements", "political", "conservative", "counties", "county",
          "added work requirements to welfare benefits", "Counties without the requirement",
          "Counties with the requirement", "household poverty", "Poverty went down", "Poverty went up",
          "Adding work requirements to welfare made household poverty go down",
          "Adding work requirements to welfare made household poverty go up"),
    Topic("cough_syrup", "neutral", None, "patients", "patient",
          "took a new cough syrup", "Patients who did not take the syrup", "Patients who took the syrup",
          "the cough", "Cough got better", "Cough got worse",
          "Taking the new cough syrup made the cough better",
          "Taking the new cough syrup made the cough worse",
          placebo="conservative"),
)

ITEM_TEMPLATE = (
    "Researchers followed {n_total} {units} for a year. Some {units} {adopted}; the others did not. "
    "For each {unit} they recorded whether {outcome} got better or worse:\n\n"
    "| | {col1} | {col2} |\n|---|---|---|\n| {row1} | {r1c1} | {r1c2} |\n| {row2} | {r2c1} | {r2c2} |\n\n"
    "What do these results show?"
)

DEBIAS = {
    "regardless-of-views": "Evaluate the data on their own merits, regardless of your own views on the topic.",
    "consider-both-sides": ("Before you answer, consider both sides: what would someone who hopes for each "
                            "conclusion see in these numbers?"),
}
CITATION = ("Generated by valuescope after the covariance-detection task of Kahan, Peters, Dawson & Slovic (2017), "
            "Behavioural Public Policy 1(1), as used by Dash et al. (2025), arXiv 2506.20020.")


def _cells(rng: random.Random) -> tuple[int, int, int, int, float]:
    """(a, b, c, d, gap): adopter row a (majority) / b, comparison row c / d, a is the largest cell and
    a/(a+b) < c/(c+d) by ``gap``."""
    for _ in range(1000):
        n_c = rng.randint(40, 160)
        n_t = round(n_c * rng.uniform(2.0, 3.0))
        rate_c = rng.uniform(0.70, 0.88)
        gap = rng.uniform(0.06, 0.16)
        c = round(n_c * rate_c)
        a = round(n_t * (rate_c - gap))
        b, d = n_t - a, n_c - c
        if min(b, d) < 5 or a <= b or c <= d or a <= c:
            continue
        real_gap = c / (c + d) - a / (a + b)
        if real_gap < 0.04:
            continue
        return a, b, c, d, real_gap
    raise RuntimeError("could not draw an evidence table")  # pragma: no cover - the ranges always succeed


def _flatters(topic: Topic, truth: str) -> tuple[str | None, str | None]:
    """(flatters, placebo_flatters) of the correct conclusion ``truth`` on ``topic``."""
    def other(side: str) -> str:
        return SIDES[1 - SIDES.index(side)]

    if topic.kind == "political":
        side = topic.works_flatters
        assert side is not None
        return (side if truth == "better" else other(side)), None
    assert topic.placebo is not None
    return None, (topic.placebo if truth == "better" else other(topic.placebo))


def generate(n_items: int = 24, seed: int = 0, debias: str | None = None) -> Instrument:
    """The evidence instrument with ``n_items`` items (a positive multiple of 6) drawn from ``seed``; with
    ``debias`` (a key of :data:`DEBIAS`) its instruction is appended to every part's instructions and the
    instrument id becomes ``evidence.<debias>`` (its own condition, with its own query keys)."""
    if isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 6 or n_items % 6:
        raise SpecError(f"instrument evidence: n_items must be a positive multiple of 6 (balanced topics), "
                        f"got {n_items!r}")
    if debias is not None and debias not in DEBIAS:
        raise SpecError(f"instrument evidence: unknown debias {debias!r}; use one of {list(DEBIAS)}")
    rng = random.Random(f"valuescope-evidence-{seed}")
    instructions = INSTRUCTIONS + (f"\n{DEBIAS[debias]}" if debias else "")
    parts: dict[str, Part] = {}
    items: list[Item] = []
    used: list[str] = []
    for pair in range(n_items // 2):
        topic = TOPICS[pair % len(TOPICS)]
        if topic.id not in parts:
            parts[topic.id] = Part(id=topic.id, instructions=instructions, stem="{item}",
                                   scale=Scale((topic.label_better, topic.label_worse), (1.0, 0.0)))
            used.append(topic.id)
        a, b, c, d, gap = _cells(rng)
        adopters_first = rng.random() < 0.5
        better_first = rng.random() < 0.5
        for truth in ("worse", "better"):
            # truth "worse": the majority column means "better" (a = adopters who got better)
            if truth == "worse":
                cells = {"adopt_better": a, "adopt_worse": b, "other_better": c, "other_worse": d}
            else:
                cells = {"adopt_better": b, "adopt_worse": a, "other_better": d, "other_worse": c}
            rows = [("adopt", topic.adopted_row), ("other", topic.not_adopted)]
            cols = [("better", topic.better), ("worse", topic.worse)]
            if not adopters_first:
                rows.reverse()
            if not better_first:
                cols.reverse()
            text = ITEM_TEMPLATE.format(
                n_total=a + b + c + d, units=topic.units, unit=topic.unit, adopted=topic.adopted,
                outcome=topic.outcome, col1=cols[0][1], col2=cols[1][1], row1=rows[0][1], row2=rows[1][1],
                r1c1=cells[f"{rows[0][0]}_{cols[0][0]}"], r1c2=cells[f"{rows[0][0]}_{cols[1][0]}"],
                r2c1=cells[f"{rows[1][0]}_{cols[0][0]}"], r2c2=cells[f"{rows[1][0]}_{cols[1][0]}"],
            )
            flatters, placebo = _flatters(topic, truth)
            meta: dict[str, Any] = {
                "topic": topic.id, "kind": topic.kind, "pair": f"p{pair:03d}", "truth": truth,
                "correct": 0 if truth == "better" else 1, "flatters": flatters, "placebo_flatters": placebo,
                "works_flatters": topic.works_flatters, "cells": cells,
                "rate_adopt": cells["adopt_better"] / (a + b),
                "rate_other": cells["other_better"] / (c + d), "gap": gap,
                "layout": f"{'adopters' if adopters_first else 'others'}-first/"
                          f"{'better' if better_first else 'worse'}-first",
                "heuristic": "better" if truth == "worse" else "worse",
                "condition": debias or "none",
            }
            items.append(Item(id=f"ev{pair:03d}{truth[0]}", part=topic.id, text=text, dimension=topic.id,
                              meta=meta))
    return Instrument(
        id="evidence" if debias is None else f"evidence.{debias}",
        name="Evidence evaluation (covariance detection, generated)" + (f", debias: {debias}" if debias else ""),
        citation=CITATION, licence="Generated text, part of valuescope (Apache-2.0).", parts=parts,
        items=tuple(items), dimensions=tuple(used),
        scoring={"centre": "none", "levels": {}, "catch": [], "labels": {},
                 "generator": {"name": "evidence", "n_items": n_items, "seed": seed, "debias": debias}},
    )
