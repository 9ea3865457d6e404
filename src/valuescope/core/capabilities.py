"""What a backend declares it can do (:class:`Capabilities`), read with :func:`capabilities`: the execution layer
and the conversation simulator (``design.contexts``) ask here, never probe a backend for attributes. Plain data in
``core`` so that every layer that holds a backend can read it; ``backends.base`` re-exports :func:`capabilities`."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares about itself, as class (or instance) attributes of the same names; a backend
    that declares nothing gets these defaults. Read them with :func:`capabilities`, never probe for them."""

    batch_sensitive: bool = False  # an answer depends on the other requests of its call: send canonical batches
    system_role: bool = True  # its chat template has a system turn (else the persona opens the user turn)
    wants_meta: bool = False  # it reads ``ScoreRequest.meta`` (the synthetic model) rather than the prompt
    renders_locally: bool = False  # it evaluates its own rendering of each prompt: one sequential chain at a time
    hooks: bool = False  # it takes forward hooks (``score_hooks``: steering) and records hidden states


def capabilities(backend: Any) -> Capabilities:
    """The capabilities ``backend`` declares (:class:`Capabilities`; the defaults where it declares none)."""
    return Capabilities(**{f.name: bool(getattr(backend, f.name, f.default)) for f in fields(Capabilities)})
