"""A responses table's answers as row-wise arrays, read from the table once and cut by row index.

The distribution metrics (inertia, concentration, steerability) read the same columns of every (context,
dimension) slice of one (run, model, instrument): the answer distributions, the persona unit, the (item, option
order) stratum, the query an answer repeats. Filtering the DataFrame per slice and re-reading those columns cost
most of their time (pandas string columns); :class:`Answers` reads each once for the whole table and
:class:`AnswerRows` is a slice of it by row index. Every quantity is a row-wise function of the table, so a
slice's arrays are the ones the slice's own DataFrame gives (tested bit for bit: tests/test_answer_rows.py).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from valuescope.analysis.metrics._common import unit_ids
from valuescope.analysis.metrics.inertia import row_distributions

#: what makes two of one respondent's answers one query asked again (all but the option order)
QUERY_COLUMNS = ("context", "topic", "n_messages", "seed", "repeat", "instrument", "item_id")


def strata(rows: pd.DataFrame) -> np.ndarray:
    """Each answer's (item, option order) stratum, ``item|order`` (the item alone without an order column)."""
    item = rows["item_id"].astype(str)
    if "option_order" in rows.columns:
        return (item + "|" + rows["option_order"].astype(str)).to_numpy()
    return item.to_numpy()


def query_codes(rows: pd.DataFrame) -> np.ndarray:
    """Codes (in order of first appearance) of the query each answer asks: its values of :data:`QUERY_COLUMNS`
    (as strings)."""
    cols = [c for c in QUERY_COLUMNS if c in rows.columns]
    if not cols:
        return np.arange(len(rows))
    codes = np.zeros(len(rows), dtype=np.int64)
    for c in cols:  # column by column, renumbered each time: the codes stay below the number of rows
        col, _ = pd.factorize(rows[c].astype(str).to_numpy(), sort=False)
        codes = pd.factorize(codes * (int(col.max(initial=0)) + 1) + col, sort=False)[0].astype(np.int64)
    return codes


class Answers:
    """The row-wise arrays of one responses table, each read on first use and kept."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._dist: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.frame)

    def distributions(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``inertia.row_distributions(frame, k)``."""
        if k not in self._dist:
            self._dist[k] = row_distributions(self.frame, k)
        return self._dist[k]

    @cached_property
    def unit(self) -> np.ndarray:
        return unit_ids(self.frame).to_numpy()

    @cached_property
    def stratum(self) -> np.ndarray:
        return strata(self.frame)

    @cached_property
    def query(self) -> np.ndarray:
        return query_codes(self.frame)

    @cached_property
    def valid(self) -> np.ndarray:
        return self.frame["valid"].astype(bool).to_numpy()

    @cached_property
    def k(self) -> np.ndarray:
        """K per row as floats (NaN where missing)."""
        return pd.to_numeric(self.frame["k"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    def column(self, name: str) -> np.ndarray:
        """A column as strings (``astype(str)``), kept."""
        key = f"_str_{name}"
        if key not in self.__dict__:
            self.__dict__[key] = self.frame[name].astype(str).to_numpy()
        return self.__dict__[key]

    @property
    def has_option_order(self) -> bool:
        return "option_order" in self.frame.columns

    def rows(self, idx: np.ndarray | None = None) -> AnswerRows:
        return AnswerRows(self, np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64))


class AnswerRows:
    """Rows ``idx`` (in table order) of :class:`Answers`: what the DataFrame of those rows would give."""

    def __init__(self, answers: Answers, idx: np.ndarray) -> None:
        self.answers = answers
        self.idx = idx

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def empty(self) -> bool:
        return len(self.idx) == 0

    def distributions(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        soft, hard, ok = self.answers.distributions(k)
        return soft[self.idx], hard[self.idx], ok[self.idx]

    @property
    def unit(self) -> np.ndarray:
        return self.answers.unit[self.idx]

    @property
    def stratum(self) -> np.ndarray:
        return self.answers.stratum[self.idx]

    @property
    def query(self) -> np.ndarray:
        """Query codes in order of first appearance within these rows (as ``query_codes`` of their frame)."""
        return pd.factorize(self.answers.query[self.idx], sort=False)[0]

    @property
    def valid(self) -> np.ndarray:
        return self.answers.valid[self.idx]

    def k_values(self) -> np.ndarray:
        """The distinct K of these rows (NaN left out), as ``frame["k"].dropna().unique()`` gives them."""
        return self.answers.frame["k"].iloc[self.idx].dropna().unique()

    def single_k(self) -> int | None:
        """The rows' one K, None when they have none or several."""
        k = self.answers.k[self.idx]
        ks = np.unique(k[np.isfinite(k)])
        return int(ks[0]) if len(ks) == 1 else None

    @property
    def has_option_order(self) -> bool:
        return self.answers.has_option_order

    def where(self, mask: np.ndarray) -> AnswerRows:
        return AnswerRows(self.answers, self.idx[mask])


def as_rows(rows: pd.DataFrame | AnswerRows) -> AnswerRows:
    """``rows`` as :class:`AnswerRows` (a DataFrame is read whole)."""
    return rows if isinstance(rows, AnswerRows) else Answers(rows).rows()
