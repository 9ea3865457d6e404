"""Shipped studies: ordinary study YAML files inside the package (``valuescope presets``)."""

from __future__ import annotations

import math
from importlib import resources

import yaml

from valuescope.study.spec import ModelSpec, NamedSource, SpecError, Study, WVSSource, study_from_dict


def _files() -> dict[str, str]:
    root = resources.files("valuescope.study.presets")
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

    ``scale`` multiplies the number of WVS personas per seed, of persona-set seeds and of repeats (the
    stability study's seeds), and caps named populations; a study scaled below 1 records what was
    reduced so that the report can say so.
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
                from valuescope.design.personas import named_personas

                full = s.limit or len(named_personas(s.list))
                limit = max(2, math.ceil(full * scale))
                notes.append(f"{s.list} personas {full}->{limit}")
                s = s.model_copy(update={"limit": limit})
            sources.append(s)
        update["population"] = study.population.model_copy(update={"sources": sources})
        repeats = max(1, math.ceil(study.repeats * scale)) if scale < 1 else study.repeats
        if repeats != study.repeats:
            notes.append(f"repeats {study.repeats}->{repeats}")
            update["repeats"] = repeats
        if scale < 1:
            update["reduced"] = f"scale={scale}: " + "; ".join(notes)
    return study.model_copy(update=update)
