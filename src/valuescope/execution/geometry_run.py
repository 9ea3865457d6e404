"""The run-time side of ``geometry:`` and ``steer:`` (docs/geometry.md), called by the runner.

* :class:`StateRecorder`: which (persona, context, repeat, layer) states a run still lacks, and
  recording them through the ``hf`` backend (resumable: recorded keys are skipped);
* the steered study's reference (:func:`valuescope.study.identity.reference_study`) is run first by the runner;
* :func:`axis_from_store` / :func:`attach_steering`: the assistant axis of a recorded run and the
  forward hook that caps or shifts the residual stream along it while the steered run is scored.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from valuescope.backends.base import capabilities, score_hooks
from valuescope.core.types import ContextSpec, Persona
from valuescope.store.geometry import load_states, persona_units, recorded_keys, write_states
from valuescope.store.sqlite import Store, StoreError
from valuescope.study.identity import digest, model_identity
from valuescope.study.spec import GeometrySpec, ModelSpec, SpecError, Study


@dataclass(frozen=True)
class StateUnit:
    persona: Persona
    context: ContextSpec
    repeat: int


def state_units(study: Study, personas: list[Persona], contexts: list[ContextSpec]) -> list[StateUnit]:
    """One unit per (persona, context, repeat), with each repeat's own conversation seed (as the plan)."""
    out = []
    for persona in personas:
        for base in contexts:
            for repeat in range(study.repeats):
                ctx = replace(base, seed=base.seed + repeat) if base.topic else base
                out.append(StateUnit(persona, ctx, repeat))
    return out


def state_key(model: ModelSpec, unit: StateUnit, layer: int) -> str:
    return digest(["state-last", model_identity(model), unit.persona.id, unit.persona.description,
                   unit.context.identity(), unit.repeat, layer], 32)


@dataclass
class StateRecorder:
    study: Study
    model: ModelSpec
    run_id: str
    units: list[StateUnit]
    done: set[str]
    recorded: int = 0
    seconds: float = 0.0
    bytes: int = 0
    note: str = ""
    layers: list[int] = field(default_factory=list)

    @classmethod
    def create(cls, study: Study, model: ModelSpec, run_id: str, personas: list[Persona],
               contexts: list[ContextSpec], store: Store) -> StateRecorder | None:
        if study.geometry is None:
            return None
        return cls(study, model, run_id, state_units(study, personas, contexts), recorded_keys(store, run_id))

    def supported(self) -> bool:
        if self.model.backend != "hf":
            self.note = f"states not recorded: backend {self.model.backend!r} exposes no hidden states (use hf)"
            return False
        return True

    def missing(self) -> bool:
        """Whether some state may be missing (layers 'auto' are only known once the model is loaded)."""
        if not self.supported():
            return False
        layers = self.study.geometry.layers if self.study.geometry else []
        if layers == "auto":
            n = len(self.units)
            return len(self.done) < 4 * n  # auto picks at most four layers
        return any(state_key(self.model, u, layer) not in self.done for u in self.units for layer in layers)

    def record(self, session: Any, progress: Any = None) -> None:
        """Record every missing state through the session's backend (an HFBackend)."""
        from valuescope.backends import hf_geometry as hg

        if not self.supported():
            return
        backend = session.backend
        n_layers = hg.n_states(backend)
        spec = self.study.geometry or GeometrySpec()
        self.layers = hg.auto_layers(n_layers) if spec.layers == "auto" else hg.check_layers(spec.layers, n_layers)
        todo = [u for u in self.units if any(state_key(self.model, u, L) not in self.done for L in self.layers)]
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:  # a steered run's states are recorded under its steering
            for hook in score_hooks(backend):
                stack.enter_context(hook())
            self._record(session, todo, progress)
        self.seconds = time.perf_counter() - t0

    def _record(self, session: Any, todo: list[StateUnit], progress: Any) -> None:
        from valuescope.backends import hf_geometry as hg

        backend = session.backend
        for i, unit in enumerate(todo):
            probe = _Probe(unit.persona, unit.context)
            msgs = list(session.persona_messages(unit.persona)) + list(session.conversation(probe))
            arr, n_tok = hg.record_states(backend, [hg.prefix_text(backend, msgs)], self.layers)
            rows = [{"run_id": self.run_id, "key": state_key(self.model, unit, L), "persona": asdict(unit.persona),
                     "context": unit.context.label, "repeat": unit.repeat, "layer": L, "n_tokens": n_tok[0],
                     "vector": arr[0, j]} for j, L in enumerate(self.layers)]
            self.recorded += write_states(session.store, rows)
            self.bytes += int(arr.nbytes)
            if progress:
                progress("states", i + 1, len(todo))


@dataclass(frozen=True)
class _Probe:
    """What ``Session.conversation`` reads of a query: the persona and the context."""

    persona: Persona
    context: ContextSpec


# --------------------------------------------------------------------------- steering


@dataclass(frozen=True)
class Axis:
    run_id: str
    layer: int
    contrast: np.ndarray
    baseline_projections: np.ndarray  # projections of the recorded no-persona states on the unit axis
    n_personas: int

    def threshold(self, quantile: float) -> float:
        return float(np.quantile(self.baseline_projections, quantile))


def axis_from_store(store: Store, run_id: str, layer: int) -> Axis:
    """The assistant axis at ``layer`` of a recorded run: contrast = baseline state minus the mean of the
    persona states (each persona averaged over its contexts and repeats)."""
    st = load_states(store, run_id)
    st = st[st["layer"] == layer] if len(st) else st
    if st.empty:
        raise StoreError(f"steer: run {run_id} has no states recorded at layer {layer} "
                         "(run it with geometry: {layers: [" + str(layer) + "]})")
    base = st[st["condition"] == "baseline"]
    pers = st[st["condition"] == "persona"]
    if base.empty or pers.empty:
        raise StoreError(f"steer: run {run_id} needs recorded states of the baseline and of personas at layer {layer}")
    units = persona_units(pers)
    P = np.stack([np.mean(np.stack(pers.loc[units == u, "vector"].to_list()), axis=0) for u in sorted(units.unique())])
    B = np.stack(base["vector"].to_list()).astype(np.float64)
    c = B.mean(axis=0) - P.astype(np.float64).mean(axis=0)
    u = c / np.linalg.norm(c)
    return Axis(run_id, layer, c, B @ u, P.shape[0])


def attach_steering(study: Study, model: ModelSpec, backend: Any, store: Store, session: Any = None,
                    baseline_queries: list[Any] | None = None,
                    instruments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Attach the study's steering hook to an HFBackend; returns what was applied (for the run result).

    ``cap: q`` floors the projection at the q-quantile of the projections of every token (but the first)
    of the run's own no-persona scoring prompts (``baseline_queries`` rendered by ``session``), taken
    without steering: the paper's "projections seen in ordinary assistant use"."""
    from valuescope.backends import hf_geometry as hg

    steer = study.steer
    assert steer is not None
    if model.backend != "hf" or not capabilities(backend).hooks:
        raise SpecError(f"steer: model {model.name!r} uses backend {model.backend!r}; steering needs backend 'hf'")
    ref = store.reference_run_id(study, model, instruments)
    axis = axis_from_store(store, ref, steer.layer)
    cap = steer.cap_value
    n_proj = 0
    if steer.cap is not None:
        texts = [backend.render(session.request(q)) for q in baseline_queries or []]
        if not texts:
            raise SpecError("steer: cap (a quantile of the no-persona projections) needs the baseline in the "
                            "study's population (population.baseline: true), or give cap_value")
        unit = axis.contrast / np.linalg.norm(axis.contrast)
        proj = hg.token_projections(backend, texts, steer.layer, unit, steer.positions)
        cap, n_proj = float(np.quantile(proj, steer.cap)), int(proj.size)
    hook = hg.Steering(backend, steer.layer, axis.contrast, add=steer.add, cap=cap, positions=steer.positions)
    backend.score_hooks.append(hook)
    return {"reference": ref, "layer": steer.layer, "add": steer.add, "cap_threshold": cap,
            "cap_tokens": n_proj, "axis_norm": float(np.linalg.norm(axis.contrast)), "hook": hook}


def detach_steering(backend: Any, applied: dict[str, Any] | None) -> None:
    """Remove the hook :func:`attach_steering` added (the backend may outlive the run)."""
    if applied and capabilities(backend).hooks and applied.get("hook") in backend.score_hooks:
        backend.score_hooks.remove(applied["hook"])
