"""The synthetic model's specification: a stated generative model instead of a network.

A synthetic model answers every query from a latent value ``eta`` (higher = a higher scale value)::

    eta = s * (mean[instrument, dimension] + effects by attribute level + effects by named persona
               + u[persona, dimension] + v[conversation, dimension] + w[persona, context, repeat, dimension])
          + e[query] + item_offset[item] + position_slope * position      (position: sequential administration only)

with ``s = -1`` for a reverse-keyed item, ``u ~ N(0, persona_sd)`` (per persona), ``v ~ N(0, drift_sd)`` (per
conversation: persona, context and conversation seed; ``drift_by: context``: per persona and context, whatever the
seed), ``w ~ N(0, repeat_sd)`` (per repeat), ``e ~ N(0, query_sd)`` (per query: persona, context, repeat and
item) and ``item_offset ~ N(0, item_sd)`` (fixed for the model: drawn from ``item_seed``). The baseline (no
persona) gets no persona effects and no ``u``; it does get ``v``, ``w``, ``e``.

The answer distribution over the K options in ascending value order is an ordered logit (or probit):
``P(y <= j) = F((c_j - eta) / temperature)`` with cut points ``c_j = step * (j - (K - 2) / 2)``, j = 0..K-2,
symmetric around 0 (``eta = 0``: centred on the scale's middle). The distribution is mapped to the letters
through the query's option order and mixed with a letter-position bias that ignores content::

    q[letter j] = (1 - letter_weight) * p[option shown under j] + letter_weight * letter_bias[j]

Every random draw is a normal from a SHA-256 of ``seed`` and what it belongs to, so an answer depends only
on the query and the spec (any batch, any order, any machine).

Dimension keys (in ``baseline``, ``effects``, ``personas``) are a dimension of an instrument (``Harm``, ``TR``),
a score group of its scoring levels (``Tradition`` = the PVQ-RR's TR and HUM), or either prefixed with the
instrument (``pvq_rr/Tradition``). Effect keys are ``attribute=level`` (a persona attribute, e.g.
``religious_denomination=Orthodox``); persona keys are a persona id or name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from valuescope.core.types import Instrument
from valuescope.study import limits
from valuescope.study.files import SpecError, format_error, read_yaml_file
from valuescope.study.norms import check_norms, group_means, is_norms

# a latent mean or shift: finite and bounded, as default_mean (an .inf effect in a spec file was simulated as
# d = inf and reported as power 1.0; issue 29)
Shift = Annotated[float, Field(ge=-50, le=50, allow_inf_nan=False)]
DimShifts = dict[str, Shift]


class NormsTarget(BaseModel):
    """Group means on an instrument's score scale that a synthetic model reproduces (a norms file,
    docs/human_norms.md): ``study.synthetic_norms.calibrated`` sets ``baseline`` and ``effects`` (on the persona
    attribute ``attribute``, one level per group) so that each group's expected score is its mean; the baseline
    gets the ``all`` group's means, or the mean of the groups'."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str
    attribute: str = "identity"
    groups: dict[str, dict[str, Annotated[float, Field(allow_inf_nan=False)]]]


#: the noise of a model built from a norms file (latent units; the synthetic defaults are 1.0 and 0.0): personas
#: of one group spread around its mean, answers around the persona's
NORMS_MODEL = {"persona_sd": 0.5, "query_sd": 0.5}


class SyntheticSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0  # persona, drift and repeat draws
    item_seed: int = 0  # item offsets (a property of the model, not of a replication)
    link: Literal["logit", "probit"] = "logit"
    temperature: float = Field(1.0, gt=0, le=100)  # answer noise in latent units: larger = flatter answers
    step: float = Field(1.0, gt=0, le=100)  # spacing of the cut points
    default_mean: float = Field(0.0, ge=-50, le=50)  # latent mean of a dimension not listed in `baseline`
    baseline: DimShifts = Field(default_factory=dict)  # dimension key -> latent mean
    item_sd: float = Field(0.0, ge=0, le=50)
    persona_sd: float = Field(1.0, ge=0, le=50)
    drift_sd: float = Field(0.0, ge=0, le=50)
    # one drift draw per conversation (respondent, context, conversation seed), or per (respondent, context)
    drift_by: Literal["conversation", "context"] = "conversation"
    repeat_sd: float = Field(0.0, ge=0, le=50)
    query_sd: float = Field(0.0, ge=0, le=50)
    effects: dict[str, DimShifts] = Field(default_factory=dict)  # "attribute=level" -> {dimension key: shift}
    personas: dict[str, DimShifts] = Field(default_factory=dict)  # persona id or name -> {dimension key: shift}
    # probability by letter shown (A, B, ...), independent of content
    letter_bias: list[Annotated[float, Field(allow_inf_nan=False)]] | None = None
    letter_weight: float = Field(0.0, ge=0, le=1)
    position_slope: float = Field(0.0, ge=-10, le=10)  # latent shift per item position, sequential only
    norms: NormsTarget | None = None  # reproduce these group means (a model built from a norms file)

    @field_validator("effects")
    @classmethod
    def _effect_keys(cls, v: dict[str, DimShifts]) -> dict[str, DimShifts]:
        for key in v:
            attr, sep, level = key.partition("=")
            if not sep or not attr.strip() or not level.strip():
                raise ValueError(f"effect key {key!r} must be 'attribute=level'")
        return v

    @field_validator("letter_bias")
    @classmethod
    def _bias(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) < 2 or any(x < 0 for x in v) or sum(v) <= 0:
            raise ValueError("letter_bias must list at least 2 non-negative probabilities (A, B, ...)")
        return v

    @property
    def persona_blind(self) -> bool:
        """No persona moves an answer: no persona spread, no attribute effect, no named persona's shift. Every
        persona then answers from the distribution the no-persona baseline answers from in the same context."""
        shifts = [v for group in (self.effects, self.personas) for m in group.values() for v in m.values()]
        planted = self.norms is not None and len({tuple(sorted(m.items())) for m in self.norms.groups.values()}) > 1
        return self.persona_sd == 0 and not any(shifts) and not planted

    def dimension_keys(self) -> list[tuple[str, str]]:
        """(where, key) of every dimension key in the spec, for validation against the instruments."""
        out = [("baseline", k) for k in self.baseline]
        out += [(f"effects.{e}", k) for e, m in self.effects.items() for k in m]
        out += [(f"personas.{p}", k) for p, m in self.personas.items() for k in m]
        return out


def synthetic_from_dict(data: Any, source: str = "synthetic spec") -> SyntheticSpec:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a synthetic spec must be a mapping of keys, got {type(data).__name__}")
    try:
        return SyntheticSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_error(err, source)) from None


def load_synthetic(path: str | Path) -> SyntheticSpec:
    """A synthetic spec file, or a norms file (docs/human_norms.md): a model that reproduces its group means
    (:class:`NormsTarget`, noise :data:`NORMS_MODEL`), personas grouped by their ``identity``."""
    data = read_yaml_file(path, "synthetic spec")
    if is_norms(data):
        norms = check_norms(data, str(path))
        target = {"instrument": norms["instrument"], "groups": group_means(norms)}
        return synthetic_from_dict({**NORMS_MODEL, "norms": target}, source=str(path))
    return synthetic_from_dict(data, source=str(path))


def parse_effect(text: str) -> tuple[str, str, float]:
    """``"religious_denomination=Orthodox:Tradition=0.5"`` -> ("religious_denomination=Orthodox", "Tradition", 0.5).

    The dimension part may carry an instrument prefix (``pvq_rr/Tradition``)."""
    where = f"--effect {text!r}"
    level, sep, rest = text.rpartition(":")
    if not sep or "=" not in level:
        raise SpecError(f"{where}: expected attribute=level:dimension=value, e.g. "
                        f"religious_denomination=Orthodox:Tradition=0.5")
    dim, sep, value = rest.rpartition("=")
    if not sep or not dim.strip():
        raise SpecError(f"{where}: expected attribute=level:dimension=value")
    try:
        shift = float(value)
    except ValueError:
        raise SpecError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(shift) or abs(shift) > limits.MAX_EFFECT:
        raise SpecError(f"{where}: the effect must be a finite number between -{limits.MAX_EFFECT:g} and "
                        f"{limits.MAX_EFFECT:g}, got {value.strip()!r}")
    attr, _, lev = level.partition("=")
    if not attr.strip() or not lev.strip():
        raise SpecError(f"{where}: expected attribute=level before ':'")
    return f"{attr.strip()}={lev.strip()}", dim.strip(), shift


def resolve_synthetic(path: str | None, inline: SyntheticSpec | None) -> SyntheticSpec:
    """The spec of a model block: the YAML file at ``path``, or the inline ``synthetic:`` block (not both)."""
    if path is not None and inline is not None:
        raise SpecError("synthetic model: give its spec as 'path' (a YAML file) or inline 'synthetic:', not both")
    if path is not None:
        return load_synthetic(path)
    return inline if inline is not None else SyntheticSpec()


def with_effects(spec: SyntheticSpec, effects: list[tuple[str, str, float]]) -> SyntheticSpec:
    """The spec with extra attribute effects added (summed where a cell is already set)."""
    merged = {k: dict(v) for k, v in spec.effects.items()}
    for level, dim, shift in effects:
        cell = merged.setdefault(level, {})
        cell[dim] = cell.get(dim, 0.0) + shift
    return spec.model_copy(update={"effects": merged})


def check_spec_dimensions(spec: SyntheticSpec, instruments: dict[str, Instrument]) -> None:
    """A dimension key of the spec that names no dimension or score group of the instruments is an error."""
    for where, key in spec.dimension_keys():
        inst_id, sep, name = key.rpartition("/")
        found = False
        for iid, inst in instruments.items():
            if sep and iid != inst_id:
                continue
            groups = {g for lv in (inst.scoring.get("levels", {}) or {}).values() for g in lv}
            if name in inst.dimensions or name in groups:
                found = True
        if not found:
            raise SpecError(f"synthetic spec: {where}: {key!r} names no dimension or score group of the study's "
                            f"instruments ({', '.join(sorted(instruments))})")
