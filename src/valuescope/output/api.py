"""The Python API: run a study, open a results directory, load a run's tables as pandas DataFrames.

Everything here is a thin layer over the same code the CLI uses (presets, the runner, the store,
:func:`valuescope.analysis.tables.load_run`, the export and the report), so a notebook and ``valuescope run``
give the same numbers and raise the same one-line errors (:class:`valuescope.ValuescopeError`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from valuescope.analysis.tables import RunTables, load_run
from valuescope.execution.runner import RunResult
from valuescope.output.studies import ModelLike as ModelLike
from valuescope.output.studies import ModelSpec as ModelSpec
from valuescope.output.studies import Study as Study
from valuescope.output.studies import StudyLike as StudyLike
from valuescope.output.studies import as_model, as_study
from valuescope.output.studies import preset as preset
from valuescope.store.sqlite import Store, StoreError, iter_stores
from valuescope.study import DEFAULT_DIR


def open_store(directory: str | Path) -> Store:
    """A store opened for reading, as the CLI's ls/show/export/report do: a store of an older valuescope is a
    one-line :class:`StoreError` saying how to migrate it, never migrated silently."""
    return Store(directory, readonly=True)


def json_safe(value: Any) -> Any:
    """NaN -> None, numpy scalars -> Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records")) if len(df) else []


class Run:
    """One stored run (one study x one model). Tables are read from the store on first use and kept.

    ``responses``, ``scores``, ``metrics`` and ``effects`` are the four export tables (columns as in
    the README's "Export formats" and docs/metrics.md); ``headline`` is the compact table ``valuescope
    show`` prints. Metrics carry bootstrap CIs (200 resamples, seed 0), exactly as the CLI computes them.
    """

    def __init__(self, store_dir: str | Path, run_id: str, *, result: RunResult | None = None) -> None:
        self.store_dir = Path(store_dir)
        with open_store(self.store_dir) as store:
            info = store.run(run_id)  # StoreError (the CLI's message) for an unknown run; a prefix is enough
        self.run_id: str = info.run_id
        self.model: str = info.model
        self.study_name: str = info.study_name
        self.study: dict[str, Any] = info.study
        self.result = result  # this session's counts when the run came from valuescope.run()
        self.report_path: Path | None = None

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, model={self.model!r}, store={str(self.store_dir)!r})"

    @cached_property
    def tables(self) -> RunTables:
        """Every table of the run at once (:class:`valuescope.analysis.tables.RunTables`)."""
        with open_store(self.store_dir) as store:
            return load_run(store, self.run_id)

    @property
    def responses(self) -> pd.DataFrame:
        """One row per answered query: persona, context, item, ``p_1..p_K`` in scale order, argmax, validity, raw."""
        return self.tables.responses

    @property
    def scores(self) -> pd.DataFrame:
        """Per (persona, context, repeat, instrument, level, dimension) score."""
        return self.tables.scores

    @property
    def metrics(self) -> pd.DataFrame:
        """The long metrics table: ``metric, dimension, context_a, context_b, value, ci_low, ci_high, n, note``."""
        return self.tables.metrics

    @property
    def effects(self) -> pd.DataFrame:
        """The effects grid: Hedges' g of attribute level vs its comparison group x dimension, Student p, BH q."""
        return self.tables.effects

    @property
    def headline(self) -> pd.DataFrame:
        """Inertia, steerability (CIs, permutation p), top-1 share per dimension, each column naming its reading
        (``_hard`` = answers, ``_soft`` = probabilities): the table ``valuescope show`` prints."""
        from valuescope.analysis import metrics

        return metrics.headline(self.metrics)

    @property
    def counts(self) -> dict[str, Any]:
        """planned, answered, invalid, failed, personas, baseline, contexts, outside_mass_mean/max."""
        return self.tables.counts

    def export(self, path: str | Path | None = None) -> list[Path]:
        """Write the four tables as CSV and Parquet (as ``valuescope export``); default ``<store>/export/<run>``."""
        from valuescope.output.export import write_tables

        return write_tables(self.tables, Path(path) if path else self.store_dir / "export" / self.run_id)

    def report(self, path: str | Path | None = None, *, compare: Run | Iterable[Run] = ()) -> Path:
        """Write the self-contained HTML report (default ``<store>/report/<run ids>.html``; a path ending in .html
        names the file, any other path a directory), with ``compare`` runs side by side; returns its path."""
        self.report_path = write_report([self, *_runs(compare)], path or self.store_dir / "report")
        return self.report_path

    def compare(self, others: Run | Iterable[Run]) -> pd.DataFrame:
        """Headline metrics of this run and ``others`` side by side: one row per (instrument, context, dimension),
        columns ``(metric, run)`` for each headline value (``inertia_soft``, ``steerability_jsd_soft``, ... as in
        :attr:`headline`, without the CI bounds); runs are named by model, or by run id where models repeat. With
        intervals and the difference: :meth:`difference`."""
        return compare([self, *_runs(others)])

    def difference(self, other: Run) -> pd.DataFrame:
        """This run (A) against ``other`` (B) per (instrument, dimension, metric): A, B and A - B, each with its
        95% interval (``a``/``a_low``/``a_high``, ``b``..., ``diff``...): a paired bootstrap over the personas
        both runs share where they share them, else MOVER from the two intervals (``interval`` names which):
        what ``show A B`` and ``report A B`` print."""
        from valuescope.output.report.tables_compare import difference_frame

        o = _runs(other)[0]
        return difference_frame(self.metrics, o.metrics, self.responses, o.responses)

    def ablation(self, other: Run) -> pd.DataFrame:
        """The papers' cross-run numbers when this run and ``other`` are an ablation pair (same model, differing
        only in item order, forced vs free choice, or seed): what ``valuescope show RUN_A RUN_B`` prints. Runs that
        are no such pair give one row with ``comparison == "none"`` and the reason in ``note``."""
        from valuescope.analysis.metrics.ablation import compare_runs

        return compare_runs(self.responses, other.responses, self.study, other.study)

    @property
    def congruence(self) -> pd.DataFrame:
        """Evidence instruments (paper 004): hard accuracy when the truth suits the persona's identity vs not,
        with 95% CIs (empty when the run has no such rows)."""
        from valuescope.analysis.metrics.tension import congruence_summary

        return congruence_summary(self.metrics) if not self.metrics.empty else pd.DataFrame()

    def truth(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """A synthetic model's ground truth beside the measured numbers: the metrics table with a ``truth``
        column and the d grid's truth (``valuescope export`` writes both); None for any other model."""
        from valuescope.known_truth.truth import run_truth

        return run_truth(self.tables)

    def summary(self, report: str | Path | None = None) -> dict[str, Any]:
        """A JSON-safe summary (what ``valuescope run --json`` / ``show --json`` print): ids, counts,
        this session's counts when run here, headline metrics and the report path."""
        out: dict[str, Any] = {"run_id": self.run_id, "model": self.model, "study": self.study_name,
                               "store": str(self.store_dir), "counts": self.counts}
        if self.result is not None:
            r = self.result
            out["session"] = {"planned": r.planned, "already_stored": r.already_done, "new": r.new,
                              "reused": r.reused, "reused_from": dict(r.reused_from), "unreadable": r.invalid,
                              "failed": r.failed, "elapsed_s": round(r.elapsed_s, 3)}
        out["headline"] = records(self.headline)
        report = report or self.report_path
        out["report"] = str(report) if report else None
        return json_safe(out)


def _runs(runs: Run | Iterable[Run]) -> list[Run]:
    """A list of distinct runs (a run given twice counts once), in the order given."""
    out = [runs] if isinstance(runs, Run) else list(runs)
    for r in out:
        if not isinstance(r, Run):
            raise TypeError(f"expected valuescope.Run objects, got {type(r).__name__}")
    return list({(r.store_dir.resolve(), r.run_id): r for r in out}.values())


def _labels(runs: Sequence[Run]) -> list[str]:
    """How runs are told apart in tables and figures: the model, else the run id, else run id @ store."""
    for labels in ([r.model for r in runs], [r.run_id for r in runs]):
        if len(set(labels)) == len(labels):
            return labels
    return [f"{r.run_id}@{r.store_dir}" for r in runs]


def report_data(runs: Run | Iterable[Run]) -> list[Any]:
    """What the report and the figures draw (:class:`valuescope.output.report.RunData`), one per run. Runs of the same
    model are labelled by run id, so that they get their own bars and colours instead of being merged."""
    from dataclasses import replace

    from valuescope.output.report.data import from_tables

    runs = _runs(runs)
    out = []
    for r, label in zip(runs, _labels(runs), strict=True):
        data = from_tables(r.tables)
        if label != r.model:
            frames = {name: getattr(data, name).assign(model=label) if "model" in getattr(data, name) else
                      getattr(data, name) for name in ("responses", "scores", "metrics", "effects")}
            data = replace(data, model=label, **frames)
        out.append(data)
    return out


def compare(runs: Sequence[Run]) -> pd.DataFrame:
    """Headline metrics of several runs side by side (see :meth:`Run.compare`)."""
    runs = _runs(runs)
    labels = _labels(runs)
    frames = [r.headline.assign(run=label) for r, label in zip(runs, labels, strict=True)]
    long = pd.concat(frames, ignore_index=True)
    from valuescope.analysis.metrics import HEADLINE_COLUMNS

    keys = ["run_id", "model", "instrument", "context", "dimension", "n"]
    values = [c for c in HEADLINE_COLUMNS if c not in keys and not c.endswith(("_low", "_high"))]
    if long.empty:
        return pd.DataFrame(columns=pd.MultiIndex.from_product([values, labels], names=["metric", "run"]))
    wide = long.pivot_table(index=["instrument", "context", "dimension"], columns="run", values=values,
                            aggfunc="first", dropna=False)
    return wide.reindex(columns=pd.MultiIndex.from_product([values, labels], names=["metric", "run"]))


def write_report(runs: Sequence[Run], path: str | Path) -> Path:
    """One self-contained HTML report of ``runs`` (several are compared side by side) at ``path`` (a file ending in
    .html, or a directory: ``<run ids>.html`` in it); returns the HTML file's path."""
    from valuescope.output.report import write_report as _write

    runs = _runs(runs)
    comparison = None
    if len(runs) == 2:  # an ablation pair (item order, forced vs free, seed) also gets the papers' cross-run numbers
        comparison = runs[0].ablation(runs[1])
    return _write(report_data(runs), Path(path), comparison=comparison)


class Results:
    """The runs in a results directory (its store, and stores directly below it), like ``valuescope ls``."""

    def __init__(self, directory: str | Path = DEFAULT_DIR) -> None:
        self.directory = Path(directory)
        self.stores = list(iter_stores(self.directory))
        if not self.stores:
            raise StoreError(f"no valuescope store in {self.directory}")

    def __repr__(self) -> str:
        return f"Results({str(self.directory)!r}, runs={len(self)})"

    def table(self) -> pd.DataFrame:
        """One row per run (as ``valuescope ls``): store, run_id, study, model, created_at, planned, answered,
        reused (answers copied from runs that asked the very same queries), unreadable, failed, complete."""
        rows = []
        for d in self.stores:
            with open_store(d) as store:
                for r in store.runs():
                    rows.append({"store": str(d), "run_id": r.run_id, "study": r.study_name, "model": r.model,
                                 "created_at": r.created_at, "planned": r.planned, "answered": r.done,
                                 "reused": r.reused, "unreadable": r.invalid, "failed": r.failed,
                                 "complete": r.complete})
        cols = ["store", "run_id", "study", "model", "created_at", "planned", "answered", "reused", "unreadable",
                "failed", "complete"]
        return pd.DataFrame(rows, columns=cols)

    @property
    def run_ids(self) -> list[str]:
        return self.table()["run_id"].tolist()

    def runs(self) -> list[Run]:
        return [Run(row.store, row.run_id) for row in self.table().itertuples()]

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __len__(self) -> int:
        return len(self.table())

    def __getitem__(self, run_id: str) -> Run:
        return self.load(run_id)

    def load(self, run_id: str) -> Run:
        """A run by id or unique prefix; :class:`StoreError` (the CLI's message) when there is none."""
        if len(self.stores) == 1:
            return Run(self.stores[0], run_id)
        found = []
        for d in self.stores:
            try:
                found.append(Run(d, run_id))
            except StoreError:
                continue
        if len(found) != 1:
            where = ", ".join(str(r.store_dir) for r in found) if found else "none of its stores"
            raise StoreError(f"run {run_id!r} in {self.directory}: found in {where}; give the store directory")
        return found[0]


def open(directory: str | Path = DEFAULT_DIR) -> Results:
    """The runs in a results directory (``valuescope ls DIR``); :class:`StoreError` when it holds no store."""
    return Results(directory)


def load(run_id: str, dir: str | Path = DEFAULT_DIR) -> Run:
    """A stored run by id (or a unique prefix) from the store in ``dir``, as ``valuescope show RUN --dir DIR``;
    :class:`StoreError` with the CLI's one-line message when the store or the run does not exist."""
    return Run(dir, run_id)


def migrate_store(directory: str | Path) -> str | None:
    """Migrate a store written by an older valuescope in place (after a backup copy); returns what was done (one
    line) or None when the store was up to date or there is none."""
    from valuescope.store.sqlite import STORE_NAME

    if not (Path(directory) / STORE_NAME).is_file():
        return None
    with Store(directory, create=False, migrate=True) as store:
        if store.migrated_from is None:
            return None
        return (f"migrated {store.path} from store schema {store.migrated_from} (run-scoped answers); "
                f"backup: {store.backup}")


def answer_counts(directory: str | Path, run_ids: Sequence[str]) -> tuple[int | None, int | None]:
    """(answers stored, answers planned) of these runs in the store in ``directory``, read afresh: (None, None)
    without a store, planned None when no run matches (a single id may be a prefix, as ``valuescope show``)."""
    from valuescope.store.sqlite import STORE_NAME

    if not (Path(directory) / STORE_NAME).is_file():
        return None, None
    ids = list(run_ids)
    with open_store(directory) as store:
        known = {r.run_id: r for r in store.runs()}
    matched = [r for rid in ids for r in [known.get(rid)] if r is not None]
    if len(ids) == 1 and not matched:  # a prefix (show, export)
        matched = [r for k, r in known.items() if k.startswith(ids[0])][:1]
    if not matched:
        return 0, None
    return sum(r.done for r in matched), sum(r.planned for r in matched)


def position_warning(share: float) -> str | None:
    """The warning a position-bias share of the probabilities gets (``metrics/position.py`` holds the threshold);
    None below it."""
    from valuescope.analysis.metrics.position import warning_text

    return warning_text(share)


def _migrate_if_old(directory: Path) -> None:
    """As ``valuescope run``: a store of an older valuescope is migrated in place, with a warning that says so."""
    note = migrate_store(directory)
    if note is not None:
        warnings.warn(note, RuntimeWarning, stacklevel=3)


def run(study: StudyLike = "demo", *, model: ModelLike | None = None, scale: float = 1.0,
        output: str | Path | None = None, report: bool = True, progress: bool = True) -> list[Run]:
    """Run (or resume) a study and return one :class:`Run` per model, as ``valuescope run`` does.

    ``study``: a :class:`Study`, a dict of study fields, a YAML path, or a preset name (default ``demo``).
    ``model``: replaces the study's models: a :class:`ModelSpec`, a dict, or a ``--model`` string
    (``path.gguf``, ``hf:ORG/NAME``, ``openai:http://host:port/v1@MODEL``, ``key=value,...``).
    ``scale``: shrink (or grow) the populations, as ``--scale``; ``output``: the results directory.
    ``report``: write the HTML report to ``<output>/report`` (its path is ``Run.report_path``).
    ``progress``: show a progress bar (stderr in a terminal, the cell's output in Jupyter); False is silent.

    Errors are :class:`valuescope.ValuescopeError` subclasses with the CLI's one-line messages. Queries that
    failed (e.g. a server that kept timing out) are not an error: a warning says how many, and running again
    retries just those.
    """
    from valuescope.core.progress import ProgressBar
    from valuescope.execution.runner import run_study
    from valuescope.study import presets

    resolved = presets.adapt(as_study(study), model=as_model(model) if model is not None else None, scale=scale,
                             output=str(output) if output is not None else None)
    _migrate_if_old(Path(resolved.output))
    bar = ProgressBar() if progress else None
    try:
        results = run_study(resolved, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    for line in (line for r in results for line in r.notes):
        warnings.warn(line, UserWarning, stacklevel=2)
    store_dir = Path(resolved.output)
    runs = [Run(store_dir, r.run_id, result=r) for r in results]
    if report and resolved.report and runs:
        path = write_report(runs, store_dir / "report")
        for r in runs:
            r.report_path = path
    failed = sum(r.failed for r in results)
    if failed:
        warnings.warn(f"{failed} queries failed; run the same study again to retry them", RuntimeWarning, stacklevel=2)
    return runs
