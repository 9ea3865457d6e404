"""Questionnaires as data: the built-in instruments (MFQ-30, PVQ-RR, PVQ-40, the donation task), a loader
for users' own instrument files, and the rule that picks an item wording for a persona.

The YAML format is documented in ``docs/instruments.md``; scoring lives in :mod:`valuescope.analysis.scoring`.
"""

from __future__ import annotations

from typing import Any

from valuescope.core.types import Instrument
from valuescope.design.instruments.loader import DATA_DIR, instrument_from_dict, list_instruments, load_instrument
from valuescope.study.spec import SpecError

WORDING_REQUESTS = ("auto", "male", "female", "you", "default")
GENDERED = ("male", "female")
#: gender-neutral wordings, in order of preference, for a persona whose gender is neither of GENDERED
NEUTRAL_WORDINGS = ("neutral", "you", "first")

GENERATED = ("evidence", "dilemmas")  # instruments built by code from a seed (see instrument_for_ref)

__all__ = [
    "DATA_DIR",
    "GENERATED",
    "WORDING_REQUESTS",
    "choose_wording",
    "instrument_for_ref",
    "instrument_from_dict",
    "list_instruments",
    "load_instrument",
]


def choose_wording(instrument: Instrument, requested: str, gender: str | None) -> str | None:
    """The wording variant to put to a persona, or None when the instrument has a single wording.

    An instrument's *default* wording is the first entry of its ``wordings`` list.

    - ``"default"``: the default wording.
    - ``"male"`` / ``"female"`` / ``"you"`` (or any other declared name): that wording; a SpecError if the
      instrument does not have it (no silent fallback).
    - ``"auto"``: if the default wording is gendered ("male" or "female") and the persona's gender is one
      of the instrument's wordings, the persona's gender (PVQ-40, as in Kovac et al. 2024); otherwise the
      default. So a persona without a gender (the baseline, a free-text persona) gets the default
      ("male" for the PVQ-40), and an instrument whose default is not gendered keeps it for everyone
      (the PVQ-RR's default is the second-person "you", as in Lee et al. 2024). A persona with another
      gender (e.g. "non-binary") gets the instrument's first gender-neutral wording (``NEUTRAL_WORDINGS``:
      the PVQ-40's first-person "first"), else the default.
    """
    if requested not in WORDING_REQUESTS and requested not in instrument.wordings:
        raise SpecError(
            f"instrument {instrument.id!r}: unknown wording {requested!r}; "
            f"use one of {list(WORDING_REQUESTS)}"
        )
    if not instrument.wordings:
        if requested in ("auto", "default"):
            return None
        raise SpecError(f"instrument {instrument.id!r} has a single wording; it has no {requested!r} wording")
    default = instrument.wordings[0]
    if requested == "default":
        return default
    if requested == "auto":
        g = gender.lower() if isinstance(gender, str) else None
        if default in GENDERED and g in GENDERED and g in instrument.wordings:
            return g
        if default in GENDERED and g:
            return next((w for w in NEUTRAL_WORDINGS if w in instrument.wordings), default)
        return default
    if requested not in instrument.wordings:
        raise SpecError(
            f"instrument {instrument.id!r} has no {requested!r} wording "
            f"(it has: {', '.join(instrument.wordings)})"
        )
    return requested


def instrument_for_ref(ref: Any) -> Instrument:
    """The instrument a study's ``instruments`` entry (:class:`valuescope.study.spec.InstrumentRef`) names.

    ``evidence`` and ``dilemmas`` are generated (:mod:`valuescope.design.instruments.evidence`,
    :mod:`valuescope.design.instruments.dilemmas`): ``n_items`` and ``seed`` (evidence) and ``debias`` (both) shape
    them; the generated items are stored with the run, so analysis never regenerates them. Any other name
    or a path is a data file, for which those three fields are an error.
    """
    name, path = getattr(ref, "name", None), getattr(ref, "path", None)
    n_items, seed, debias = getattr(ref, "n_items", None), getattr(ref, "seed", None), getattr(ref, "debias", None)
    if name == "evidence" and path is None:
        from valuescope.design.instruments import evidence

        return evidence.generate(n_items=24 if n_items is None else n_items, seed=0 if seed is None else seed,
                                 debias=debias)
    if name == "dilemmas" and path is None:
        from valuescope.design.instruments import dilemmas

        if n_items is not None or seed is not None:
            raise SpecError("instrument dilemmas: has a fixed set of 48 items; 'n_items' and 'seed' do not apply "
                            "(use 'items' for a subset)")
        return dilemmas.generate(debias=debias)
    given = [k for k, v in (("n_items", n_items), ("seed", seed), ("debias", debias)) if v is not None]
    if given:
        raise SpecError(f"instrument {name or path}: field '{given[0]}' applies only to the generated instruments "
                        f"({', '.join(GENERATED)})")
    return load_instrument(name=name, path=path)
