"""What kind of instrument a family applies to, and which political side a persona takes: read in one place.

* :func:`instrument_kind`: ``evidence`` (every item carries a ``truth`` and a ``pair``: motivated reasoning),
  ``dilemmas`` (a ``dilemma`` and a ``rated_side``: evenhandedness), else None (a questionnaire scored by
  dimension);
* :func:`identity_side` / :func:`respondent_columns`: ``liberal`` / ``conservative`` for a persona's identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import unit_ids
from valuescope.core.types import SIDES, Instrument

_KEYWORDS = {
    "liberal": ("liberal", "democrat", "left", "progressive", "social democrat"),
    "conservative": ("conservative", "republican", "right", "tory"),
}


def identity_side(value: Any) -> str | None:
    """``liberal`` / ``conservative`` for an identity text (WVS ``identity`` attribute, or a free-text
    ``identity`` column of a persona file: "Democrat", "left-wing", "a Republican voter" ...), None when it
    names neither or both."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    hits = [side for side, words in _KEYWORDS.items() if any(w in text for w in words)]
    return hits[0] if len(hits) == 1 else None


#: paper 004's instrument types, recognised by the item meta every item of one carries (a generated
#: instrument, or a user's file following the same contract: docs/instruments.md)
KIND_META = {"evidence": ("truth", "pair"), "dilemmas": ("dilemma", "rated_side")}


def instrument_kind(inst: Instrument) -> str | None:
    """``evidence`` / ``dilemmas`` when every item carries that type's meta keys (:data:`KIND_META`), else None."""
    for kind, keys in KIND_META.items():
        if inst.items and all(all(k in it.meta for k in keys) for it in inst.items):
            return kind
    return None


def respondent_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``unit`` (persona identity as a resampling unit) and ``side`` (liberal / conservative / None, from the
    ``identity`` attribute) of every answer row."""
    ident = df["attr_identity"] if "attr_identity" in df.columns else pd.Series(None, index=df.index)
    codes, texts = pd.factorize(ident, use_na_sentinel=True)  # each distinct text read once
    sides = np.array([identity_side(v) for v in texts] + [None], dtype=object)  # code -1 (missing): None
    return pd.DataFrame({"unit": unit_ids(df).to_numpy(), "identity": ident.to_numpy(), "side": sides[codes]},
                        index=df.index)


__all__ = ["KIND_META", "SIDES", "identity_side", "instrument_kind", "respondent_columns"]
