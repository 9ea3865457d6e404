"""A persona as a resampling unit (the one definition, read by the metrics, the known-truth model and the
geometry of recorded states)."""

from __future__ import annotations

import pandas as pd


def unit_ids(df: pd.DataFrame) -> pd.Series:
    """A persona's identity as a resampling unit: ``persona_id``, as ``persona_id|set_seed`` when the
    persona comes from a seeded persona set (the same id drawn under two seeds is two personas)."""
    pid = df["persona_id"].astype(str)
    if "set_seed" in df.columns:
        raw = df["set_seed"]
        num = pd.to_numeric(raw, errors="coerce")
        if num.notna().sum() == raw.notna().sum():  # 111, 111.0 and "111" are the same seed
            raw = num.round().astype("Int64")
        seed = raw.astype("string")
        return pid.where(seed.isna(), pid + "|" + seed.fillna("")).astype(str)
    return pid
