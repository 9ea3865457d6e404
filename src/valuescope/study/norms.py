"""Human norms files: published group means on an instrument's score scale, each group with its citation
(format: docs/human_norms.md). valuescope ships no human numbers: every norm comes from a user's file.

A norms file is read in three places: a study's ``human: {norms: FILE}`` (checked when the study is loaded),
a synthetic model built from one (``--model synthetic:NORMS.yaml``: ``synthetic_spec``) and the human
comparison metrics (``analysis.metrics.human``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from valuescope.study.files import SpecError, read_yaml_file


def is_norms(data: Any) -> bool:
    """A mapping with ``groups`` (and no synthetic model's keys): what a norms file looks like."""
    return isinstance(data, dict) and "groups" in data


def check_norms(data: Any, where: str) -> dict[str, Any]:
    """``instrument``, ``scale`` (what the numbers are on), ``groups: {group: {means: {dimension: number},
    source: text}}``. Every group needs a non-empty ``source``; one-line errors naming ``where``."""
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict) or not data["groups"]:
        raise SpecError(f"{where}: a norms file needs 'groups: {{name: {{means: ..., source: ...}}}}'")
    for key in ("instrument", "scale"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise SpecError(f"{where}: field '{key}' must be a non-empty text")
    for name, g in data["groups"].items():
        at = f"{where}: groups.{name}"
        if not isinstance(g, dict) or not isinstance(g.get("source"), str) or not g["source"].strip():
            raise SpecError(f"{at}: every group needs a 'source' (paper, table or figure, page)")
        means = g.get("means")
        if not isinstance(means, dict) or not means or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in means.values()):
            raise SpecError(f"{at}: 'means' must map dimensions to numbers")
    return data


def load_norms(path: str | Path) -> dict[str, Any]:
    """A norms file, checked (:func:`check_norms`)."""
    return check_norms(read_yaml_file(path, "norms"), str(path))


def group_means(norms: dict[str, Any]) -> dict[str, dict[str, float]]:
    """group -> {dimension: mean} of a checked norms file."""
    return {str(name): {str(k): float(v) for k, v in g["means"].items()} for name, g in norms["groups"].items()}
