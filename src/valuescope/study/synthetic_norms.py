"""A synthetic model that reproduces a norms file's group means on the score scale (issue 30).

The synthetic model's expected answer to an item is ``E[x | eta] = sum_j v_j P(y = j | eta)`` (ordered logit or
probit, :func:`ordinal_probs`; ``v_j`` the scale values in ascending order; a reverse-keyed item is scored as
``min + max - x`` with ``eta`` negated). A persona of group g answers dimension d with ``eta = mu + z``, where
``z ~ N(0, sigma)`` collects every random effect (persona, drift, repeat and query sds; the baseline has no
persona effect), so the group's expected dimension score (mean over its personas, items and answers) is

    S(mu, sigma) = mean_{items i of d} integral E[x_i | mu + sigma z] phi(z) dz

(Gauss-Hermite quadrature, 60 nodes), increasing in ``mu``. :func:`calibrated` solves ``S(mu_g, sigma) = h_g[d]``
for every group and dimension of the norms (Brent's method) and plants ``baseline = mu_base`` and effects
``attribute=g: mu_g - mu_base``: each group's expected score is then its norm, so the model's political gap
equals the human one and ``political_gap_slope``'s truth is 1 (r's is 1). Item offsets (``item_sd``) are a
property of one drawn model and are not integrated: a norms model keeps ``item_sd`` 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, ndtr

from valuescope.core.types import Instrument
from valuescope.study.files import SpecError
from valuescope.study.synthetic_spec import SyntheticSpec

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)
_LATENT_RANGE = 50.0  # the bound of a latent mean (synthetic_spec.Shift)


def ordinal_probs(eta: np.ndarray, k: int, spec: SyntheticSpec) -> np.ndarray:
    """(n, k) ordered-logit/probit probabilities of the k options in ascending value order."""
    cuts = spec.step * (np.arange(k - 1) - (k - 2) / 2.0)
    z = (cuts[None, :] - np.asarray(eta, dtype=float)[:, None]) / spec.temperature
    cdf = expit(z) if spec.link == "logit" else ndtr(z)
    cum = np.concatenate([np.zeros((len(z), 1)), cdf, np.ones((len(z), 1))], axis=1)
    return np.clip(np.diff(cum, axis=1), 0.0, 1.0)


def expected_score(spec: SyntheticSpec, items: list[tuple[tuple[float, ...], bool]], mu: float, sigma: float) -> float:
    """``S(mu, sigma)`` of the module docstring for ``items`` = [(scale values, reverse)]."""
    eta = mu + sigma * _NODES
    out = 0.0
    for values, reverse in items:
        v = np.sort(np.asarray(values, dtype=float))
        p = ordinal_probs(-eta if reverse else eta, len(v), spec)
        x = p @ v
        out += float(_WEIGHTS @ ((v[0] + v[-1] - x) if reverse else x))
    return out / len(items)


def _dimension_items(inst: Instrument, dim: str) -> list[tuple[tuple[float, ...], bool]]:
    return [(tuple(float(x) for x in inst.parts[i.part].scale.values), bool(i.reverse))
            for i in inst.items if i.dimension == dim and not i.catch]


def _solve(spec: SyntheticSpec, items: list[tuple[tuple[float, ...], bool]], target: float, sigma: float,
           where: str) -> float:
    lo, hi = (expected_score(spec, items, s * _LATENT_RANGE, sigma) for s in (-1, 1))
    if not lo < target < hi:
        raise SpecError(f"{where}: mean {target:g} is outside what the synthetic model can reach on this scale "
                        f"({lo:.3g} to {hi:.3g})")
    return float(brentq(lambda m: expected_score(spec, items, m, sigma) - target, -_LATENT_RANGE, _LATENT_RANGE,
                        xtol=1e-10))


def calibrated(spec: SyntheticSpec, instruments: Mapping[str, Instrument]) -> SyntheticSpec:
    """``spec`` with ``baseline`` and ``effects`` set to reproduce its norms (module docstring); ``spec`` itself
    when it has none. One-line errors for an instrument the study does not ask, a dimension it does not have, or
    a mean the model cannot reach."""
    target = spec.norms
    if target is None:
        return spec
    inst = instruments.get(target.instrument)
    if inst is None:
        raise SpecError(f"synthetic model from norms: the norms are for {target.instrument!r}, which the study does "
                        f"not ask ({', '.join(sorted(instruments)) or 'no instrument'})")
    if spec.item_sd > 0:
        raise SpecError("synthetic model from norms: item_sd must be 0 (item offsets are not calibrated)")
    var = spec.drift_sd ** 2 + spec.repeat_sd ** 2 + spec.query_sd ** 2
    sig_persona, sig_base = math.sqrt(var + spec.persona_sd ** 2), math.sqrt(var)
    groups = {g: m for g, m in target.groups.items() if g != "all"}
    dims = list(dict.fromkeys(d for m in target.groups.values() for d in m))
    baseline: dict[str, float] = {}
    effects: dict[str, dict[str, float]] = {f"{target.attribute}={g}": {} for g in groups}
    for d in dims:
        items = _dimension_items(inst, d)
        if not items:
            raise SpecError(f"synthetic model from norms: {d!r} is not a dimension of {target.instrument} "
                            f"({', '.join(inst.dimensions)})")
        key = f"{target.instrument}/{d}"
        means = [m[d] for m in groups.values() if d in m]
        base_target: Any = target.groups.get("all", {}).get(d, float(np.mean(means)) if means else None)
        if base_target is None:
            continue
        mu_base = _solve(spec, items, base_target, sig_base, f"norms 'all'.{d}")
        baseline[key] = mu_base
        for g, m in groups.items():
            if d in m:
                effects[f"{target.attribute}={g}"][key] = _solve(spec, items, m[d], sig_persona, f"norms {g}.{d}") \
                    - mu_base
    return spec.model_copy(update={"baseline": {**spec.baseline, **baseline},
                                   "effects": {**spec.effects, **effects}, "norms": None})
