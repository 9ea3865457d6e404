"""Write a run's tables as CSV and Parquet (formats documented in the README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from valuescope.analysis.tables import RunTables


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].astype("string")
    return out


def write_tables(tables: RunTables, directory: str | Path) -> list[Path]:
    """``responses``, ``scores``, ``metrics`` and ``effects`` as <name>.csv and <name>.parquet."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("responses", "scores", "metrics", "effects"):
        df: pd.DataFrame = getattr(tables, name)
        csv = directory / f"{name}.csv"
        df.to_csv(csv, index=False)
        pq = directory / f"{name}.parquet"
        _parquet_safe(df).to_parquet(pq, index=False)
        written += [csv, pq]
    return written
