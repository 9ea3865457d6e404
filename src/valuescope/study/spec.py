"""The study specification: what to run, validated with one clear error per problem.

A study is a YAML file or a :class:`Study` object. Unknown keys are errors (a typo must not be
silently ignored), and every error names the field it is about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from valuescope.study import DEFAULT_DIR, limits
from valuescope.study.files import SpecError, format_error, read_yaml_file
from valuescope.study.norms import load_norms
from valuescope.study.synthetic_spec import SyntheticSpec, resolve_synthetic

#: the option order of a study that does not set one; before it, ``permute-persona`` (studies stored under that
#: default resume when they set it explicitly: ``execution.runner`` says so when it finds one)
DEFAULT_OPTION_ORDER: Final = "balanced"
OLD_DEFAULT_OPTION_ORDER: Final = "permute-persona"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """One model to audit. ``backend`` picks the implementation; the remaining fields are passed
    to it (a field a backend does not use is ignored by that backend)."""

    name: str = "smollm2-135m"
    backend: Literal["llamacpp", "openai", "hf", "vllm", "anthropic", "synthetic"] = "llamacpp"
    path: str | None = None  # GGUF file or HF model directory (synthetic: its spec YAML); None = the embedded SmolLM2
    model: str | None = None  # model name on a server (openai / anthropic / vllm)
    base_url: str | list[str] | None = None  # openai: a list = several servers of one model (docs/scale.md)
    api_key_env: str | None = None  # NAME of the environment variable that holds the key
    concurrency: int = Field(4, ge=1, le=256)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    n_ctx: int = Field(2048, ge=256)
    # "auto": measured, the fastest of 1 thread and all cores (llama.cpp, where unset means auto; hf: unset is
    # torch's default); docs/performance.md
    n_threads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = None
    batch_size: int = Field(16, ge=1, le=512)
    # llama.cpp's extra (repacked) weight buffers: auto = off where llama.cpp reports AMX (it segfaults there)
    extra_buffers: Literal["auto", "on", "off"] = "auto"
    # how prompts sharing a prefix are evaluated (None: the backend's default; docs/performance.md)
    scheduler: Literal["prefix", "batched", "sequential", "naive"] | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None  # hf backend; None: float32 on CPU
    logprobs: bool = True  # False: generate and parse even where logprobs exist
    judge: ModelSpec | None = None  # optional judge model mapping free text to an option
    synthetic: SyntheticSpec | None = None  # backend synthetic: its spec inline (docs/backends.md)

    @model_validator(mode="after")
    def _synthetic_only(self) -> ModelSpec:
        if self.synthetic is not None and self.backend != "synthetic":
            raise ValueError("'synthetic' is the spec of a synthetic model: set backend: synthetic")
        if self.synthetic is not None and self.path is not None:
            raise ValueError("a synthetic model takes its spec as 'path' (a YAML file) or inline, not both")
        return self

    @model_validator(mode="after")
    def _server_list(self) -> ModelSpec:
        if isinstance(self.base_url, list):
            if self.backend != "openai":
                raise ValueError("a list of base_url servers needs backend: openai")
            if not self.base_url or len(set(self.base_url)) != len(self.base_url):
                raise ValueError("base_url: a list of servers must be non-empty and without repeats")
        return self

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or not v.replace("_", "").isalnum()):
            raise ValueError("must be the NAME of an environment variable (the key is never stored)")
        return v


class InstrumentRef(_Strict):
    """A built-in instrument by name (mfq30, pvq_rr, pvq40, donation; generated: evidence, dilemmas) or a
    YAML file of one."""

    name: str | None = None
    path: str | None = None
    wording: Literal["auto", "male", "female", "you", "first", "default"] = "auto"
    items: list[str] | None = None  # restrict to these item ids (a quick subset)
    # generated instruments (evidence, dilemmas; docs/instruments.md): size, seed, debiasing instruction
    n_items: int | None = Field(None, ge=1)
    seed: int | None = None
    debias: Literal["regardless-of-views", "consider-both-sides"] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> InstrumentRef:
        if (self.name is None) == (self.path is None):
            raise ValueError("give exactly one of 'name' or 'path'")
        return self


class WVSSource(_Strict):
    kind: Literal["wvs"] = "wvs"
    n: int = Field(20, ge=1, le=limits.MAX_PERSONAS_PER_SOURCE)
    seeds: list[int] = Field(default_factory=lambda: [111], min_length=1, max_length=limits.MAX_SEEDS)
    attributes: str | None = None  # YAML attribute space of the user's; None = Lee et al.'s
    identity: bool = False  # add a political identity (liberal / conservative), docs/personas.md


class NamedSource(_Strict):
    kind: Literal["named"] = "named"
    list: Literal["tolkien", "famous_people", "real_world_people"] = "tolkien"
    limit: int | None = Field(None, ge=1, le=limits.MAX_PERSONAS_PER_SOURCE)
    wording: Literal["project", "paper"] = "project"  # "paper": Kovač et al.'s exact persona message


class FileSource(_Strict):
    kind: Literal["file"] = "file"
    path: str
    limit: int | None = Field(None, ge=1, le=limits.MAX_PERSONAS_PER_SOURCE)


PersonaSource = Annotated[WVSSource | NamedSource | FileSource, Field(discriminator="kind")]


class PopulationSpec(_Strict):
    baseline: bool = True
    sources: list[PersonaSource] = Field(default_factory=list)


class ContextsSpec(_Strict):
    """Conversations before the questionnaire. ``topics`` may include "none" (no conversation);
    ``n_messages`` is a list so that conversation length can be swept."""

    topics: list[str] = Field(default_factory=lambda: ["none"], min_length=1, max_length=limits.MAX_TOPICS)
    n_messages: list[int] = Field(default_factory=lambda: [3], min_length=1, max_length=limits.MAX_MESSAGES)
    custom_topics: dict[str, str] = Field(default_factory=dict)  # topic -> opening message
    # real conversations: JSONL files, one conversation per line (design/contexts.py, docs/personas.md)
    files: list[str] = Field(default_factory=list)
    threads: int | None = Field(None, ge=1)  # sample this many conversations per file (study seed)
    max_tokens: int = Field(96, ge=8, le=1024)

    @field_validator("n_messages")
    @classmethod
    def _nonneg(cls, v: list[int]) -> list[int]:
        if any(n < 0 for n in v):
            raise ValueError("conversation lengths must be >= 0")
        if any(n > limits.MAX_MESSAGES for n in v):
            raise ValueError(f"conversation lengths must be at most {limits.MAX_MESSAGES} messages")
        return v


class GeometrySpec(_Strict):
    """Record residual-stream states per persona (``hf`` backend only; see docs/geometry.md).

    ``layers``: residual-stream indices 1..n_layers (the state after that many decoder blocks), or
    "auto" (four layers spread over depth). Recording does not change the answers, so it is not part
    of the run id: switching it on for a stored run records the states beside its answers."""

    layers: list[int] | Literal["auto"] = "auto"

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: list[int] | str) -> list[int] | str:
        if isinstance(v, list) and (not v or any(n < 1 for n in v) or len(set(v)) != len(v)):
            raise ValueError("layers must be distinct integers >= 1 (1 = after the first decoder block), or 'auto'")
        return v


class SteerSpec(_Strict):
    """Intervene on the residual stream along the assistant axis during scoring (``hf`` backend).

    The axis comes from a run with recorded states: ``source`` (a run id or unique prefix in the same
    store) or, when None, the same study without ``steer``, run first in the same store. ``cap``:
    floor every token's projection on the axis at this quantile (0..1) of the no-persona states'
    projections; ``cap_value``: at this fixed projection instead; ``add``: move every token along the
    axis by this multiple of the contrast vector (baseline minus persona mean); ``positions``: at every
    token ("all", as Lu et al.) or only at the position whose next-token distribution is the answer
    ("answer"). Part of the run id."""

    axis: Literal["assistant"] = "assistant"
    layer: int = Field(..., ge=1)
    source: str | None = None
    cap: float | None = Field(None, ge=0.0, le=1.0)
    cap_value: float | None = None
    add: float = 0.0
    positions: Literal["all", "answer"] = "all"  # every token, or only the position the answer is read from

    @model_validator(mode="after")
    def _one_cap(self) -> SteerSpec:
        if self.cap is not None and self.cap_value is not None:
            raise ValueError("give at most one of 'cap' (a quantile) or 'cap_value' (a fixed projection)")
        return self


class RaySpec(_Strict):
    """Where and how wide a Ray run is (``executor: ray``; docs/scale.md). Not part of a run's identity."""

    address: str | None = None  # None: start Ray on this machine; "auto": the running cluster; "ray://host:10001"
    workers: int | None = Field(None, ge=1)  # actors, each with its own backend (None: one per cpus_per_worker)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)


class HumanSpec(_Strict):
    """Compare the persona groups with people (docs/human_norms.md): ``norms``, a norms file of published group
    means with their citations (relative to the study file; None: the norms file a synthetic model was built
    from, if any), personas grouped by their ``attribute``, the political gap taken as ``pair[1] - pair[0]``. An
    analysis setting: not part of the run id."""

    norms: str | None = None
    attribute: str = "identity"
    pair: tuple[str, str] = ("liberal", "conservative")

    @field_validator("attribute")
    @classmethod
    def _attribute(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a persona attribute (e.g. identity)")
        return v


class Study(_Strict):
    name: str = "study"
    output: str = DEFAULT_DIR
    models: list[ModelSpec] = Field(default_factory=lambda: [ModelSpec()], min_length=1)
    instruments: list[InstrumentRef] = Field(
        default_factory=lambda: [InstrumentRef(name="mfq30")], min_length=1
    )
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    contexts: ContextsSpec = Field(default_factory=ContextsSpec)
    seed: int = 0  # option permutations, item shuffles, conversation sampling
    repeats: int = Field(1, ge=1, le=limits.MAX_REPEATS)
    # balanced (the default): a fixed seeded set of option orders (Latin squares), personas assigned one in
    # rotation, the baseline asked under every one of them (docs/design.md); the others are kept for users
    # who want them (permute-persona was the default before; a study stored under it sets it explicitly to
    # resume) but let a letter-biased model fake steerability and rank-order stability
    option_order: Literal["fixed", "permute-persona", "permute-query", "balanced"] = DEFAULT_OPTION_ORDER
    option_orders: int | None = Field(None, ge=1, le=1000)  # balanced: how many orders (None = K)
    item_order: Literal["fixed", "shuffle"] = "fixed"
    # sequential: the items of one questionnaire asked one after another in one conversation, each
    # chosen letter left in the context (docs/design.md)
    administration: Literal["independent", "sequential"] = "independent"
    forced_choice: bool = True
    # per-persona scores from the chosen answer (Kovač et al.) or the probability-weighted expectation;
    # an analysis setting: not part of the run id (the same answers, scored another way)
    score_from: Literal["expected", "answer"] = "expected"
    extraction: Literal["logprobs", "generate"] = "logprobs"
    layout: Literal["shared-prefix", "paper"] = "shared-prefix"
    answer_prefix: str = "Answer: ("
    # an answer whose option letters got less than 1 - this of the next-token probability is stored
    # as unreadable (valid = 0) with the reason, never scored as if the model had chosen among them
    max_outside_mass: float = Field(0.5, ge=0.0, le=1.0)
    executor: Literal["local", "ray"] = "local"  # who answers the queries; the results are the same
    ray: RaySpec = Field(default_factory=RaySpec)
    reduced: str | None = None  # set by presets run with --scale < 1: shown in the report
    report: bool = True
    geometry: GeometrySpec | None = None  # record persona states (hf backend): docs/geometry.md
    steer: SteerSpec | None = None  # activation capping / additive steering (hf backend)
    human: HumanSpec | None = None  # compare persona groups with a norms file of people (docs/human_norms.md)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\\n"):
            raise ValueError("must be a non-empty name without slashes")
        return v

    @model_validator(mode="after")
    def _orders_need_balanced(self) -> Study:
        if self.option_orders is not None and self.option_order != "balanced":
            raise ValueError("option_orders is only used with option_order: balanced")
        return self

    @model_validator(mode="after")
    def _unique_models(self) -> Study:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self



def study_from_dict(data: Any, source: str = "study") -> Study:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a study must be a mapping of keys, got {type(data).__name__}")
    try:
        return Study.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_error(err, source)) from None


def load_study(path: str | Path) -> Study:
    data = read_yaml_file(path, "study")
    if data is None:
        raise SpecError(f"{path}: the study file is empty")
    study = study_from_dict(data, source=str(path))
    # relative paths inside the study are relative to the study file
    base = Path(path).resolve().parent
    study = _resolve_paths(study, base)
    if study.human is not None and study.human.norms is not None:
        load_norms(study.human.norms)  # a missing or malformed norms file is a one-line error now, not after the run
    return study


def _resolve_paths(study: Study, base: Path) -> Study:
    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    instruments = [
        i.model_copy(update={"path": fix(i.path)}) if i.path else i for i in study.instruments
    ]
    sources: list[Any] = []
    for s in study.population.sources:
        if isinstance(s, FileSource):
            s = s.model_copy(update={"path": fix(s.path)})
        elif isinstance(s, WVSSource) and s.attributes:
            s = s.model_copy(update={"attributes": fix(s.attributes)})
        sources.append(s)
    models = [m.model_copy(update={"path": fix(m.path)}) if m.path else m for m in study.models]
    contexts = study.contexts.model_copy(update={"files": [fix(f) for f in study.contexts.files]})
    human = study.human.model_copy(update={"norms": fix(study.human.norms)}) if study.human else None
    return study.model_copy(
        update={
            "human": human,
            "contexts": contexts,
            "instruments": instruments,
            "population": study.population.model_copy(update={"sources": sources}),
            "models": models,
        }
    )


def human_norms(study: Study, model: ModelSpec) -> tuple[HumanSpec | None, str]:
    """The human comparison of a run (docs/human_norms.md): (settings with the norms file to use, or None; a
    one-line note). The study's ``human.norms``; else, for a synthetic model built from a norms file, that file
    (the note says so); else None, with a note when the study asks for the comparison (``human:``) all the same."""
    human = study.human
    built_from = None
    if model.backend == "synthetic" and model.path is not None:
        try:
            if resolve_synthetic(model.path, None).norms is not None:
                built_from = model.path
        except SpecError:
            built_from = None
    if human is not None and human.norms is not None:
        return human, ""
    if built_from is not None:
        return (human or HumanSpec()).model_copy(update={"norms": built_from}), (
            f"human comparison: the study names no norms file, so the norms the synthetic model was built from "
            f"are used: {built_from}")
    if human is not None:
        return None, ("human comparison: this study needs a norms file of published group means with their "
                      "citations (human: {norms: FILE}, docs/human_norms.md); valuescope ships no human numbers, "
                      "so no human_distance or political_gap rows")
    return None, ""
