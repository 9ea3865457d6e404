"""Run identity: which of a study's settings decide the answers, and the comparisons built on that split.

A :class:`~valuescope.study.spec.Study` is *what is asked* (the settings that decide the answers: hashed into
the run id) plus *how it is run* (:data:`RUN_OPTIONS`: where results go, whether a report is written, who
answers the queries, whether hidden states are recorded, how answers are scored). Changing a run option never
makes a new run: the same stored answers are resumed, read or recorded beside.

Everything that compares runs by their settings asks this module:

* :func:`run_id`: ``<study>-<model>-<hash>``, the hash over the answer settings, the model's identity and the
  content of the instruments (computed once per model, by :class:`~valuescope.execution.session.Resolved`);
* :func:`stored_study`: the settings stored with a run (:data:`PLACEMENT` left out: a local and a Ray run store
  the same);
* :func:`reference_study` / :func:`reference_run_id`: the unsteered reference of a steered run, the same
  answer settings without ``steer`` (one way to find it: its id, from the steered run's instruments);
* :data:`ABLATION_FREE`: what may differ within an ablation pair.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from valuescope.study.spec import ContextsSpec, GeometrySpec, ModelSpec, Study
from valuescope.study.synthetic_spec import resolve_synthetic

#: how a study is run, not what it asks: outside every run's identity
RUN_OPTIONS = frozenset({"output", "report", "executor", "ray", "geometry", "score_from", "human"})
#: run options a later run of the same id stores again (the store keeps the rest as first stored): what the
#: analysis reads, so that adding a norms file to a run already made takes effect
RESTATED = ("human",)
#: run options that say where the queries are answered: not even stored with a run
PLACEMENT = frozenset({"executor", "ray"})
#: the study's label and its model list: the label is the run id's prefix, each model is its own run
_NAMED_APART = frozenset({"name", "models"})
#: answer settings added after runs were stored: left out of the hash while they hold these values, so
#: that runs stored before they existed keep their ids
_LATER_DEFAULTS: dict[str, Any] = {"option_orders": None, "administration": "independent"}
#: what may differ within an ablation pair besides the run options: the label, a scale-down note and what
#: is sampled (instruments asked, population size: the pair is compared on what both runs hold)
ABLATION_FREE = RUN_OPTIONS | {"name", "reduced", "instruments", "population"}


def digest(obj: object, n: int = 20) -> str:
    """The first ``n`` hex digits of a SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def model_identity(model: ModelSpec) -> dict[str, object]:
    """What identifies the model's answers (not how it is served: concurrency, timeouts...). A synthetic
    model is identified by its spec's content, so an edited spec file is a new run."""
    ident: dict[str, object] = {"name": model.name, "backend": model.backend, "path": model.path,
                                "model": model.model, "logprobs": model.logprobs}
    if model.backend == "synthetic":
        synthetic = resolve_synthetic(model.path, model.synthetic).model_dump(mode="json")
        if synthetic.get("drift_by") == "conversation":  # the default: ids from before the setting stay
            synthetic.pop("drift_by")
        if synthetic.get("norms") is None:  # only a model built from a norms file has them
            synthetic.pop("norms", None)
        ident["synthetic"] = synthetic
    # a chosen scheduler or dtype moves answers (by up to a few hundredths): another run; unset, the
    # identity (and every stored key) stays as it was before these settings existed
    ident.update({k: v for k, v in (("scheduler", model.scheduler), ("dtype", model.dtype)) if v is not None})
    return ident


def answer_settings(study: Study) -> dict[str, Any]:
    """The study settings that decide the answers (the run id's hash input, models apart). An unset
    ``steer`` is left out (older ids stay as they were), as are later settings at their first value."""
    skip = set(RUN_OPTIONS | _NAMED_APART) | ({"steer"} if study.steer is None else set())
    out = study.model_dump(mode="json", exclude=skip)
    for name, default in _LATER_DEFAULTS.items():
        if out.get(name) == default:
            out.pop(name, None)
    # conversations files: their content, not their path; absent, older ids stay as they were
    if study.contexts.files:
        out["contexts"]["files"] = threads_digest(study.contexts)
    else:
        out["contexts"].pop("files", None)
    if study.contexts.threads is None:
        out["contexts"].pop("threads", None)
    return out


def threads_digest(spec: ContextsSpec) -> list[str]:
    """Content hash of each conversations file (what the run id covers instead of its path)."""
    return [hashlib.sha256(Path(f).read_bytes()).hexdigest()[:20] if Path(f).is_file() else f
            for f in spec.files]


def instruments_digest(instruments: Mapping[str, Mapping[str, Any]]) -> str:
    """Hash of the full content of the instruments a run uses: ``{id: dataclasses.asdict(instrument)}``,
    as ``runs.instruments_json`` holds it (a stored run's digest is computed from what it stored)."""
    return digest(sorted(instruments.items()), 20) if instruments else ""


def run_id(study: Study, model: ModelSpec, instruments: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """``<study>-<model>-<hash>``: the hash covers :func:`answer_settings`, :func:`model_identity` and the
    content of every instrument the run uses (item texts, options, scale values, dimension map, reverse
    flags, scoring), so a changed study or an edited instrument is a new run and an unchanged one resumes.
    (Answers to queries that did not change are reused, not asked again.)"""
    content = instruments_digest(instruments or {})
    return f"{study.name}-{model.name}-{digest([answer_settings(study), model_identity(model), content], 8)}"


def stored_study(study: Study, model: ModelSpec) -> dict[str, Any]:
    """The study settings stored with a run: everything but other models and :data:`PLACEMENT`, and no
    secrets (the spec only ever holds the *name* of an API-key variable)."""
    data = study.model_dump(mode="json", exclude=set(PLACEMENT))
    data["models"] = [model.model_dump(mode="json")]
    return data


def fingerprint(study: Study) -> str:
    """Hash of what a study asks (every model's identity included), not of how it is run."""
    return digest([answer_settings(study), [model_identity(m) for m in study.models]], 12)


# --------------------------------------------------------------------------- comparisons


def reference_study(study: Study) -> Study:
    """The unsteered reference of a steered study: the same answer settings without ``steer``, recording
    the states at the steered layer (plus any layers the study already records: a run option)."""
    if study.steer is None:
        raise ValueError("reference_study: the study is not steered")
    layers: Any = [study.steer.layer]
    if study.geometry is not None:
        layers = study.geometry.layers if study.geometry.layers == "auto" else sorted(
            set(study.geometry.layers) | {study.steer.layer})
    return study.model_copy(update={"steer": None, "geometry": GeometrySpec(layers=layers)})


def reference_run_id(study: Study, model: ModelSpec, instruments: Mapping[str, Mapping[str, Any]] | None) -> str:
    """The run a steered study takes its axis from and is compared with: ``steer.source`` when given (a run
    id or a unique prefix, resolved by the store), else the id of :func:`reference_study` with the same
    instruments. The one rule for both the run side and the read side."""
    if study.steer is None:
        raise ValueError("reference_run_id: the study is not steered")
    if study.steer.source is not None:
        return study.steer.source
    return run_id(reference_study(study), model, instruments)
