"""What the report reads: one :class:`RunData` per run (plain data, no behaviour).

The report never reaches back into the store, the backends or the metrics code: whoever calls
:func:`valuescope.output.report.write_report` assembles these fields from the earlier stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: columns of the long metrics frame and of the Cohen's d grid: the metrics package's own contracts
from valuescope.analysis.metrics import METRIC_COLUMNS as METRIC_COLUMNS
from valuescope.analysis.metrics.effects import EFFECT_COLUMNS as EFFECT_COLUMNS
from valuescope.core.types import Message


@dataclass
class RunData:
    """Everything the report shows about one run (one model).

    ``responses``  tidy per-query table (schema: :mod:`valuescope.analysis.tidy`).
    ``scores``     per-persona dimension scores (:func:`valuescope.analysis.scoring.score_personas`).
    ``metrics``    long metrics table (:data:`METRIC_COLUMNS`); metric names such as inertia_soft,
                   inertia_hard, steerability_jsd, steerability_p, top1_share, top2_adjacent, rank_order,
                   ipsative, distance_to_neutral, icc, var_within, var_between, seed_correlation,
                   convergence_var (with ``n`` = number of personas).
    ``effects``    Hedges' g grid (:data:`EFFECT_COLUMNS`).
    ``example_prompt``  the exact rendered prompt of one query.
    ``counts``     queries, invalid, outside_mass (mean), ... shown as a table.
    ``conversations``  optional samples ``(persona_id, context, messages)``.
    ``persona_texts``  optional persona id -> description / system message (shown for a sample).
    ``reduced``    set when a preset ran at reduced scale: shown as a banner.

    Any frame may be empty: the figures that need it are skipped with a note saying why.
    """

    run_id: str
    model: str
    study: dict[str, Any] = field(default_factory=dict)
    responses: pd.DataFrame = field(default_factory=pd.DataFrame)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    example_prompt: str = ""
    counts: dict[str, Any] = field(default_factory=dict)
    conversations: list[tuple[str, str, list[Message] | list[dict[str, str]]]] | None = None
    persona_texts: dict[str, str] | None = None
    reduced: str | None = None
    geometry: pd.DataFrame = field(default_factory=pd.DataFrame)  # persona positions (docs/geometry.md)
    dose: pd.DataFrame = field(default_factory=pd.DataFrame)  # scores against steering strength


def from_tables(tables: Any) -> RunData:
    """A stored run (:class:`valuescope.analysis.tables.RunTables`) -> what the report shows."""
    import json

    info = tables.info
    study = info.study
    conversations = []
    for c in tables.conversations:
        ctx = json.loads(c["context_json"])
        label = "none" if ctx.get("topic") is None else f"{ctx['topic']}@{ctx['n_messages']}"
        conversations.append((c["persona_id"], label, json.loads(c["messages_json"])))
    return RunData(
        run_id=tables.run_id,
        model=tables.model,
        study=study,
        responses=tables.responses,
        scores=tables.scores,
        metrics=tables.metrics,
        effects=tables.effects,
        example_prompt=info.example_prompt or "",
        counts=tables.counts,
        conversations=conversations or None,
        persona_texts=tables.persona_texts or None,
        reduced=study.get("reduced"),
        geometry=getattr(tables, "geometry", pd.DataFrame()),
        dose=getattr(tables, "dose", pd.DataFrame()),
    )
