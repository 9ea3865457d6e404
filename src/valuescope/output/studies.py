"""Studies and models built in Python (``valuescope.Study``, ``valuescope.ModelSpec``, ``valuescope.preset``):
the same fields, defaults and validation as a study YAML file, and what the API accepts where a study or a
model is taken (a study object, a dict, a YAML path or a preset name; a model object, a dict or a ``--model``
string)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from valuescope.study import spec as specmod
from valuescope.study.files import SpecError, format_error


class Study(specmod.Study):
    """A study built in Python: the same fields, defaults and validation as a study YAML file.

    ``valuescope.Study(name="quick", instruments=[{"name": "mfq30", "items": ["HARMLESS"]}],
    population={"sources": [{"kind": "wvs", "n": 3}]})``. A bad field raises
    :class:`valuescope.SpecError` with the one-line message the CLI prints for the same YAML (with
    ``study`` in place of the file name), e.g. ``study: field 'repeats': Input should be greater than or
    equal to 1 (got 0)``. Nested blocks may be given as dicts or as :class:`ModelSpec` objects.
    """

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise SpecError(format_error(err, "study")) from None

    def replace(self, **changes: Any) -> Study:
        """A validated copy with some fields changed: ``study.replace(name="quick", repeats=2)``."""
        return Study(**{**self.model_dump(), **changes})


class ModelSpec(specmod.ModelSpec):
    """One model block built in Python (``valuescope.ModelSpec(name="qwen", backend="openai", ...)``),
    validated like the ``models:`` entries of a study file; a bad field is a :class:`valuescope.SpecError`.
    Anywhere a model is taken, a string in the ``--model`` syntax also works (``hf:ORG/NAME``, ``x.gguf``, ...)."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise SpecError(format_error(err, "model")) from None


StudyLike = specmod.Study | str | Path | dict[str, Any]
ModelLike = specmod.ModelSpec | str | dict[str, Any]


def preset(name: str) -> Study:
    """A shipped preset (``demo``, ``inertia``, ``stability``, ...) as a :class:`Study` to inspect or change."""
    from valuescope.study import presets

    return Study(**presets.load_preset(name).model_dump())


def as_study(study: StudyLike) -> specmod.Study:
    if isinstance(study, specmod.Study):
        return study
    if isinstance(study, dict):
        return specmod.study_from_dict(study, source="study")
    if isinstance(study, Path) or str(study).endswith((".yaml", ".yml")) or Path(str(study)).is_file():
        return specmod.load_study(study)
    from valuescope.study import presets

    return presets.load_preset(str(study))


def as_model(model: ModelLike) -> specmod.ModelSpec:
    if isinstance(model, specmod.ModelSpec):
        return model
    if isinstance(model, dict):
        return specmod.study_from_dict({"models": [model]}, source="model").models[0]
    from valuescope.study.modelref import parse_model

    return parse_model(str(model), "model")
