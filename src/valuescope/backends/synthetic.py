"""``backend: synthetic``: a model whose letter distributions come from a stated generative model
(``synthetic_spec``: formulas; ``synthetic_model``: the vectorised computation) instead of a network.

It answers through the same runner, store, metrics and report as any backend, from the plain
per-query ``meta`` the runner attaches to each ``ScoreRequest`` (persona, item, option order, context,
position), never from the prompt text. Every answer is a deterministic function of that meta and the
spec. Conversations get short deterministic text, so context studies run end to end. Its ground truth
is :mod:`valuescope.known_truth.truth`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from valuescope.backends.base import BackendError
from valuescope.backends.synthetic_model import design_from_metas, latent, letter_probs
from valuescope.core.types import GenerateRequest, Instrument, LetterScores, ScoreRequest
from valuescope.study.synthetic_norms import calibrated
from valuescope.study.synthetic_spec import SyntheticSpec, check_spec_dimensions, resolve_synthetic, synthetic_from_dict

_REPLIES = (
    "I would start with what matters most to me.",
    "That is an interesting question, let me think about it.",
    "Here is my answer, short and simple.",
    "I see it a little differently, but go on.",
    "Let us take it one step at a time.",
    "Thank you, that helps.",
)


class SyntheticBackend:
    """A known-truth model. ``path``: its YAML spec; or ``synthetic``: the spec inline (a mapping)."""

    system_role = True
    wants_meta = True  # the runner attaches ScoreRequest.meta

    def __init__(self, *, name: str = "synthetic", path: str | None = None,
                 synthetic: SyntheticSpec | Mapping[str, Any] | None = None, **_: Any) -> None:
        self.name = name
        inline = synthetic
        if isinstance(inline, Mapping):
            inline = synthetic_from_dict(dict(inline), source=f"model {name}: synthetic")
        self.spec: SyntheticSpec = resolve_synthetic(path, inline)
        self.stats: dict[str, Any] = {"scored": 0, "generated": 0}

    def check_instruments(self, instruments: Mapping[str, Instrument]) -> None:
        """Every dimension key of the spec must name a dimension or score group of the study's instruments; a
        model built from a norms file is calibrated to them here (``study.synthetic_norms``)."""
        check_spec_dimensions(self.spec, instruments)
        self.spec = calibrated(self.spec, instruments)

    def score(self, requests: Sequence[ScoreRequest]) -> list[LetterScores]:
        if self.spec.norms is not None:
            raise BackendError("synthetic backend: a model built from a norms file answers once it knows the study's "
                               "instruments (check_instruments calibrates it)")
        metas = []
        for r in requests:
            if r.meta is None:
                raise BackendError("synthetic backend: a request carries no query meta (it answers only "
                                   "queries planned by valuescope's runner)")
            metas.append(r.meta)
        design = design_from_metas(metas)
        probs = letter_probs(self.spec, design, latent(self.spec, design))
        self.stats["scored"] += len(requests)
        out = []
        for i, r in enumerate(requests):
            k = len(r.letters)
            if k != design.k[i]:
                raise BackendError(f"synthetic backend: request has {k} letters, its meta {design.k[i]} options")
            out.append(LetterScores(probs=tuple(float(x) for x in probs[i, :k]), outside_mass=0.0))
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        out = []
        for r in requests:
            blob = "\x1f".join(f"{m.role}:{m.content}" for m in r.messages) + f"\x1f{r.seed}\x1f{self.spec.seed}"
            h = int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:4], "big")
            out.append(_REPLIES[h % len(_REPLIES)])
        self.stats["generated"] += len(requests)
        return out

    def close(self) -> None:
        return None
