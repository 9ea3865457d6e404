"""The metric families: each registers one ``rows(inputs)`` function; :func:`valuescope.analysis.metrics.summary.
metric_table` loops over them to make a run's one long metrics table (``METRIC_COLUMNS``).

A family module decorates its producer with ``@register(name, rank)``; ``rank`` orders the families' rows in
the table. To add a metric family: write ``rows(inputs) -> DataFrame`` (``metrics_frame`` of
``metric_row`` dicts), register it, and import its module in ``summary.py`` (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from valuescope.core.types import Instrument
from valuescope.study.spec import HumanSpec

#: bootstrap draws behind a run's metrics table (``analysis.tables.load_run``, ``metric_table`` and every
#: family's producer take this default; the report, the API and the CLI read the table it made)
N_BOOT = 200


@dataclass(frozen=True)
class MetricInputs:
    """Everything a family may read about one run (plain tables; no store)."""

    responses: pd.DataFrame  # the tidy answers the metrics use (one reading: analysis.tables.split_readings)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # per-persona dimension scores
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    n_boot: int = N_BOOT
    seed: int = 0
    run_id: str = ""
    model: str = ""
    kept_apart: pd.DataFrame = field(default_factory=pd.DataFrame)  # answers read another way (not used)
    states: pd.DataFrame = field(default_factory=pd.DataFrame)  # recorded residual-stream states (geometry)
    steered: bool = False  # a steered run: compared with its unsteered reference
    reference: MetricInputs | None = None  # that reference's answers and scores, when stored
    reference_id: str = ""
    reference_note: str = ""  # why there is no reference
    human: HumanSpec | None = None  # the human comparison, its norms file named (study.spec.human_norms)
    human_note: str = ""  # why there is none, where the study asks for it


Rows = Callable[[MetricInputs], pd.DataFrame]
_FAMILIES: dict[str, tuple[int, Rows]] = {}


def register(name: str, rank: int) -> Callable[[Rows], Rows]:
    """Register ``rows`` as the producer of the metric family ``name`` (rows ordered by ``rank``)."""

    def deco(fn: Rows) -> Rows:
        if name in _FAMILIES and _FAMILIES[name][1] is not fn:
            raise ValueError(f"metric family {name!r} is registered twice")
        _FAMILIES[name] = (rank, fn)
        return fn

    return deco


def families() -> list[tuple[str, Rows]]:
    """The registered families in rank order."""
    return [(name, fn) for name, (_, fn) in sorted(_FAMILIES.items(), key=lambda kv: (kv[1][0], kv[0]))]


def family_names() -> list[str]:
    return [name for name, _ in families()]


__all__ = ["MetricInputs", "Rows", "families", "family_names", "register"]

