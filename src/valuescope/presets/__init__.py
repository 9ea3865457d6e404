"""Shipped studies: ordinary study YAML files inside the package (``valuescope presets``)."""

from __future__ import annotations

import math
from importlib import resources

import yaml

from valuescope.spec import ModelSpec, NamedSource, SpecError, Study, WVSSource, study_from_dict


def _files() -> dict[str, str]:
    root = resources.files("valuescope.presets")
    return {p.name.removesuffix(".yaml"): p.read_text(encoding="utf-8")
            for p in root.iterdir() if p.name.endswith(".yaml")}


def list_presets() -> list[tuple[str, str]]:
    out = []
    for name, text in sorted(_files().items()):
        first = next((ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")), "")
        out.append((name, first))
    return out


def preset_text(name: str) -> str:
    files = _files()
    if name not in files:
        raise SpecError(f"unknown preset {name!r}; known: {', '.join(sorted(files))}")
    return files[name]


def load_preset(name: str) -> Study:
    return study_from_dict(yaml.safe_load(preset_text(name)), source=f"preset {name}")


def adapt(study: Study, *, model: ModelSpec | None = None, scale: float = 1.0, output: str | None = None) -> Study:
    """Point a study at another model, scale its populations down (or up), move its output.

    ``scale`` multiplies the number of WVS personas per seed and of persona-set seeds, and caps named
    populations; a scaled study records what was reduced so the report can say so.
    """
    if not (0 < scale <= 10):
        raise SpecError(f"--scale must be in (0, 10], got {scale}")
    update: dict[str, object] = {}
    if model is not None:
        update["models"] = [model]
    if output is not None:
        update["output"] = output
    if scale != 1.0:
        sources = []
        notes = []
        for s in study.population.sources:
            if isinstance(s, WVSSource):
                n = max(2, math.ceil(s.n * scale))
                seeds = s.seeds[: max(1, math.ceil(len(s.seeds) * scale))] if scale < 1 else s.seeds
                notes.append(f"WVS personas {s.n}->{n} per set, seeds {len(s.seeds)}->{len(seeds)}")
                s = s.model_copy(update={"n": n, "seeds": seeds})
            elif isinstance(s, NamedSource):
                full = s.limit
                limit = max(2, math.ceil((full or 60) * scale))
                notes.append(f"{s.list} personas capped at {limit}")
                s = s.model_copy(update={"limit": limit})
            sources.append(s)
        update["population"] = study.population.model_copy(update={"sources": sources})
        if scale < 1:
            update["reduced"] = f"scale={scale}: " + "; ".join(notes)
    return study.model_copy(update=update)
