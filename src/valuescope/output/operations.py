"""What the commands do besides reading stored runs (those are :mod:`valuescope.output.api`): the study a
command's arguments name, its plan, running it, a judge model's evaluation, the inputs of a power simulation.

The CLI calls these (and the API) for everything that is not argument parsing and printing. Heavy modules are
imported on first use, so that ``valuescope --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from valuescope.backends.base import BackendError
from valuescope.store.sqlite import STORE_NAME, StoreError
from valuescope.study.files import SpecError
from valuescope.study.spec import ModelSpec, Study

# the errors a user can act on (a bad study file or option, an unknown run, a model that cannot load): one line
USER_ERRORS: tuple[type[Exception], ...] = (SpecError, StoreError, BackendError)


def store_file(directory: str | Path) -> Path:
    """The database file of the store in ``directory`` (it may not exist)."""
    return Path(directory) / STORE_NAME


def parse_model(option: str, flag: str = "--model") -> ModelSpec:
    """``--model`` (or ``--judge``): a GGUF path, hf:..., openai:...[@MODEL] or key=value,... (see modelref);
    a :class:`SpecError` naming ``flag`` for anything else."""
    from valuescope.study.modelref import parse_model as parse

    return parse(option, flag)


def load_study(study_file: Path | None, preset: str | None, default: str = "demo") -> Study:
    """The study a command names: a study file, or a shipped preset (``default`` when neither is given)."""
    from valuescope.study import presets
    from valuescope.study.spec import load_study as load

    if study_file is not None and preset is not None:
        raise SpecError("give a study file or --preset, not both")
    return load(study_file) if study_file is not None else presets.load_preset(preset or default)


def adapt_study(study: Study, model: str | None = None, scale: float = 1.0, output: Path | None = None,
                norms: Path | None = None) -> Study:
    """The study with its models replaced (``--model`` syntax), scaled (``--scale``), written to ``output`` and
    compared with the people of a norms file (``--norms``: ``human.norms``, checked now)."""
    from valuescope.study import presets
    from valuescope.study.norms import load_norms
    from valuescope.study.spec import HumanSpec

    study = presets.adapt(study, model=parse_model(model) if model else None, scale=scale,
                          output=str(output) if output else None)
    if norms is None:
        return study
    load_norms(norms)
    human = (study.human or HumanSpec()).model_copy(update={"norms": str(Path(norms).resolve())})
    return study.model_copy(update={"human": human})


def presets() -> list[tuple[str, str]]:
    """The shipped presets: (name, description)."""
    from valuescope.study import presets as shipped

    return shipped.list_presets()


def preset_text(name: str) -> str:
    """A shipped preset's YAML, to copy and edit."""
    from valuescope.study import presets as shipped

    return shipped.preset_text(name)


def load_preset(name: str) -> Study:
    from valuescope.study import presets as shipped

    return shipped.load_preset(name)


def plan(study: Study, calibrate: int) -> list[Any]:
    """Queries, prompt tokens, stored answers and the time and disk estimated per model
    (:func:`valuescope.execution.dry_run.plan_study`), nothing asked but ``calibrate`` queries per model."""
    from valuescope.execution.dry_run import plan_study

    return plan_study(study, calibrate=calibrate)


def chars_per_token() -> int:
    """How many characters a prompt token is estimated at where no tokenizer is loaded."""
    from valuescope.execution.dry_run import CHARS_PER_TOKEN

    return CHARS_PER_TOKEN


def run_ids(study: Study) -> list[str]:
    """The run ids of a study (one per model), without running anything."""
    from valuescope.execution.runner import run_ids as ids

    return ids(study)


def run_study(study: Study, progress: Callable[..., None] | None = None) -> list[Any]:
    """Run (or resume) a study: one :class:`valuescope.execution.runner.RunResult` per model."""
    from valuescope.execution.runner import run_study as run

    return run(study, progress=progress)


def judge_eval(sample: Path, judge: str) -> tuple[ModelSpec, dict[str, Any]]:
    """(the judge's model spec, its report): how often a judge model (``--judge`` syntax) and the rule-based
    parser read the labelled replies in ``sample`` (JSONL) right."""
    from valuescope.backends import extraction
    from valuescope.execution.runner import make_backend

    samples = extraction.read_labelled_samples(sample)
    spec = parse_model(judge, "--judge")
    backend = make_backend(spec)
    try:
        return spec, extraction.judge_eval(backend, samples)
    finally:
        backend.close()


def power_inputs(synthetic: Path | None, effect: Sequence[str], sizes: str, alpha: float, target: float,
                 latent: bool) -> tuple[Any, list[tuple[str, str, float]], list[int], bool]:
    """(synthetic model spec, effects to plant, sizes, latent) of ``valuescope power``'s options; with no
    ``--effect``, the spec's own effects, tested as the latent shifts they are."""
    from valuescope.study.synthetic_spec import SyntheticSpec, load_synthetic, parse_effect

    spec = load_synthetic(synthetic) if synthetic is not None else SyntheticSpec()
    effects = [parse_effect(e) for e in effect]
    if not effects:
        effects = [(lev, dim, v) for lev, cell in spec.effects.items() for dim, v in cell.items()]
        spec, latent = spec.model_copy(update={"effects": {}}), True
    if not effects:
        raise SpecError("--effect: give at least one effect to plant (or a --synthetic spec with effects)")
    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise SpecError(f"--sizes: expected comma-separated integers, got {sizes!r}") from None
    if not 0 < alpha < 1 or not 0 < target < 1:
        raise SpecError("--alpha and --power must lie between 0 and 1")
    return spec, effects, size_list, latent


def power_analysis(*args: Any, **kwargs: Any) -> Any:
    """The power table (a DataFrame): power and CI widths against personas for planted effects (``valuescope
    power``; the arguments of :func:`valuescope.known_truth.power.power_analysis`)."""
    from valuescope.known_truth.power import power_analysis as simulate

    return simulate(*args, **kwargs)
