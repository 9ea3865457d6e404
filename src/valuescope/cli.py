"""Command line: ``valuescope run | ls | show | export | report | presets | judge-eval | power``.

User errors (a bad study file, an unknown run, a model that cannot load) print one line and exit
with code 2; nothing already stored is touched.
"""

from __future__ import annotations

import functools
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from valuescope import __version__
from valuescope.study import DEFAULT_DIR

HELP = """valuescope: how a language model's expressed values move, or refuse to move, when it plays personas.

Commands: run, plan, ls, show, export, report, presets, migrate, judge-eval, power.

User errors (a bad study file, an unknown run, a model that cannot load) print one line and exit with code 2;
nothing already stored is touched."""

app = typer.Typer(add_completion=False, no_args_is_help=False, help=HELP, pretty_exceptions_enable=False)
# piped output (scripts, CI logs) gets wide lines instead of wrapped table cells. Every text is printed
# literally (markup=False, emoji=False): a path, run id, instrument name or message holding "[...]" or
# ":name:" shows as it is; styles are given as Text objects, never as markup.
out = Console(width=None if sys.stdout.isatty() else 200, markup=False, emoji=False, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, markup=False, emoji=False, highlight=False,
              soft_wrap=True)

# click's base of usage errors (a missing argument, an unknown option), as the click that typer uses defines it
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _print_json(data: object) -> None:
    """One strict JSON document on stdout (NaN -> null), nothing else."""
    import json

    from valuescope.output.api import json_safe

    sys.stdout.write(json.dumps(json_safe(data), allow_nan=False) + "\n")


def _json_option():
    return typer.Option("--json", help="Print one JSON document on stdout instead of tables.")


def fail(message: str, code: int = 2) -> None:
    err.print(Text.assemble(("error:", "bold red"), " ", " ".join(str(message).splitlines())))
    raise typer.Exit(code)


# what the running command reads and writes, for the one line a machine failure or an interrupt gets:
# "store" (the results folder) and "runs" (a callable giving the run ids whose stored answers to count)
_WHERE: dict[str, Any] = {}


def _where(store: Path, runs: Callable[[], list[str]], target: Path | None = None) -> None:
    """``target``: the folder the command writes its outputs to (export, report)."""
    _WHERE.update(store=Path(store), runs=runs, target=target)


def _stored() -> tuple[int | None, int | None]:
    """(answers stored, answers planned) of the command's runs, read afresh; None where unknown."""
    from valuescope.store.sqlite import STORE_NAME

    store, runs = _WHERE.get("store"), _WHERE.get("runs")
    if store is None or runs is None or not (store / STORE_NAME).is_file():
        return None, None
    try:
        ids = list(runs())
        with _open_store(store) as st:
            known = {r["run_id"]: r for r in st.runs()}
        matched = [r for rid in ids for r in [known.get(rid)] if r is not None]
        if len(ids) == 1 and not matched:  # a prefix (show, export)
            matched = [r for k, r in known.items() if k.startswith(ids[0])][:1]
        if not matched:
            return 0, None
        return sum(r["done"] for r in matched), sum(r["planned"] for r in matched)
    except Exception:  # noqa: BLE001 - a store that cannot be read now (full disk): say less, never trace back
        return None, None


def _interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C or SIGTERM: one line saying what is stored and the command that continues."""
    from valuescope.core.failures import Terminated, continue_command

    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal while we say so changes nothing
        signal.signal(sig, signal.SIG_IGN)
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    done, planned = _stored()
    if done is None:
        stored = "the answers committed so far are stored"
    else:
        stored = f"{done} of {planned} answers are stored" if planned else f"{done} answers are stored"
    err.print(f"{what}: {stored}; run the same command again to continue: {continue_command()}")
    raise typer.Exit(143 if isinstance(exc, Terminated) else 130)


def _machine_failure(exc: Exception) -> None:
    """A full disk, a path that cannot be written, a read-only or locked database, memory exhausted: one
    line (exit 1 for a full disk, I/O or memory, 2 for a path the user can change). Anything else re-raises."""
    from valuescope.core.failures import disk_full_line, explain
    from valuescope.store.sqlite import STORE_NAME

    store = _WHERE.get("store")
    database = store / STORE_NAME if store is not None else None
    why = explain(exc, database=database)
    if why is None:
        raise exc
    if why.disk_full:
        name = getattr(exc, "filename", None) or (database if isinstance(exc, sqlite3.Error) else None) \
            or _WHERE.get("target") or database or "the results folder"
        fail(disk_full_line(name, _stored()[0]), 1)
    permission = isinstance(exc, OSError) or "read-only" in why.message or "permission" in why.message
    fail(why.message, 2 if permission else 1)


def _guarded(command: Callable[..., None]) -> Callable[..., None]:
    """Run a command so that every failure is one line: SIGTERM is handled as Ctrl-C (open transactions roll
    back, backends close), and a machine failure (:func:`_machine_failure`) never prints a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from valuescope.core.failures import Terminated

        def on_term(signum: int, frame: object) -> None:
            raise Terminated()

        _WHERE.clear()
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, on_term)
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            _interrupted(exc)
        except (typer.Exit, typer.Abort, _USAGE_ERROR):
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a machine failure
            _machine_failure(exc)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _user_errors():
    from valuescope.backends.base import BackendError
    from valuescope.store.sqlite import StoreError
    from valuescope.study.spec import SpecError

    return (SpecError, StoreError, BackendError)


def _parse_model(option: str, flag: str = "--model"):
    """``--model`` (or ``--judge``): a GGUF path, hf:..., openai:...[@MODEL] or key=value,... (see modelref)."""
    from valuescope.study.modelref import parse_model

    return parse_model(option, flag)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        out.print(f"valuescope {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help())


@app.command()
@_guarded
def run(
    study_file: Annotated[Path | None, typer.Argument(help="Study YAML (default: the built-in demo study).")] = None,
    preset: Annotated[str | None, typer.Option(help="Run a shipped preset (see: valuescope presets).")] = None,
    model: Annotated[str | None, typer.Option(help="Replace the study's models: synthetic (the known-truth model, "
                                              "no download), a .gguf path, hf:ORG/NAME, hf:DIR, "
                                              "openai:URL[@MODEL] or key=value,...")] = None,
    scale: Annotated[float, typer.Option(help="Scale personas and seeds by this factor (presets).")] = 1.0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output directory (store + report).")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no tables: one summary line "
                                        "per run and the paths written.")] = False,
    as_json: Annotated[bool, _json_option()] = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Run on Ray: 'auto' (the running cluster), 'local' (start Ray here) or an address.")] = None,
    ray_workers: Annotated[int | None, typer.Option(
        help="Ray workers, one backend each (default: one per CPU).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ask nothing: print the plan (as valuescope plan).")]
    = False,
) -> None:
    """Run (or resume) a study and print its headline metrics (--json: a list of run summaries)."""
    from valuescope.execution.runner import run_study
    from valuescope.study import presets as presetmod

    try:
        if study_file is not None and preset is not None:
            fail("give a study file or --preset, not both")
        if study_file is not None:
            from valuescope.study.spec import load_study

            study = load_study(study_file)
        else:
            study = presetmod.load_preset(preset or "demo")
        study = presetmod.adapt(study, model=_parse_model(model) if model else None, scale=scale,
                                output=str(output) if output else None)
        if ray is not None or ray_workers is not None:
            study = _on_ray(study, ray, ray_workers)
    except _user_errors() as exc:
        fail(str(exc))
    if dry_run:
        _print_plan(study, calibrate=8)
        return
    from valuescope.execution.runner import run_ids

    _where(Path(study.output), lambda: run_ids(study))
    try:
        _migrate_if_old(Path(study.output))
    except _user_errors() as exc:
        fail(str(exc))
    from valuescope.core.progress import ProgressBar

    progress = None if quiet else ProgressBar(err)
    try:
        results = run_study(study, progress=progress)
    except _user_errors() as exc:
        fail(str(exc))
    finally:
        if progress is not None:
            progress.close()
    for line in (line for res in results for line in res.notes):
        err.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)
    store_dir = Path(study.output)
    if as_json:
        _run_json(store_dir, results, report and study.report)
        return
    for res in results:
        out.print(Text.assemble(
            (res.run_id, "bold"), f": {res.planned} queries planned, {res.already_done} already stored, "
            f"{res.new} new, {res.invalid} unreadable, {res.failed} failed"
            + (f", {res.elsewhere} stored meanwhile by another process" if res.elsewhere else "")
            + f" ({res.elapsed_s:.1f} s)"))
        for source, n in res.reused_from.items():
            out.print(f"  {n} answers reused from run {source} (the very same queries; not asked again)",
                      highlight=False)
        if res.geometry.get("states") or res.geometry.get("note"):
            g = res.geometry
            out.print(f"states: {g.get('states', 0)} recorded at layers {g.get('layers', [])} in "
                      f"{g.get('seconds', 0.0):.1f} s ({g.get('bytes', 0) / 1e6:.2f} MB float32) {g.get('note', '')}",
                      highlight=False)
        if not quiet:
            _print_headline(store_dir, res.run_id)
    if report and study.report:
        paths = _write_report(store_dir, [r.run_id for r in results], store_dir / "report")
        out.print(f"report: {paths}")
    from valuescope.core.failures import quoted

    out.print(f"results: {store_dir / 'valuescope.sqlite'}  (valuescope show RUN --dir {quoted(store_dir)})")
    if any(r.failed for r in results):
        err.print("some queries failed; run the same command again to retry them")
        raise typer.Exit(1)


@app.command("plan")
def plan_cmd(
    study_file: Annotated[Path | None, typer.Argument(help="Study YAML (default: the built-in demo study).")] = None,
    preset: Annotated[str | None, typer.Option(help="A shipped preset instead of a study file.")] = None,
    model: Annotated[str | None, typer.Option(help="Replace the study's models (as run --model; synthetic too).")]
    = None,
    scale: Annotated[float, typer.Option(help="Scale personas and seeds by this factor (presets).")] = 1.0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output directory (to count stored "
                                                "answers).")] = None,
    calibrate: Annotated[int, typer.Option(help="Real queries answered per model to time it (0: no model "
                                                "is loaded, no time or disk estimate).")] = 8,
) -> None:
    """Before anything is asked: queries per model, prompt tokens, the estimated time on this machine (from
    a quick calibration) and the disk the answers will take."""
    from valuescope.study import presets as presetmod

    try:
        if study_file is not None and preset is not None:
            fail("give a study file or --preset, not both")
        if study_file is not None:
            from valuescope.study.spec import load_study

            study = load_study(study_file)
        else:
            study = presetmod.load_preset(preset or "demo")
        study = presetmod.adapt(study, model=_parse_model(model) if model else None, scale=scale,
                                output=str(output) if output else None)
    except _user_errors() as exc:
        fail(str(exc))
    if calibrate < 0:
        fail("--calibrate must be 0 or more")
    _print_plan(study, calibrate)


def _print_plan(study, calibrate: int) -> None:
    from valuescope.execution.dry_run import CHARS_PER_TOKEN, plan_study
    from valuescope.output.numbers import fmt_num

    try:
        plans = plan_study(study, calibrate=calibrate)
    except _user_errors() as exc:
        fail(str(exc))
    header = ["model", "queries", "stored", "to ask", "prompt tokens", "time (est.)", "disk (est.)"]
    rows = []
    for p in plans:
        tokens = fmt_num(p.prompt_tokens) + ("" if p.tokens_counted else " *")
        est = "–" if p.estimated_s != p.estimated_s else _duration(p.estimated_s)
        disk = "–" if p.disk_bytes != p.disk_bytes else _size(p.disk_bytes)
        rows.append([p.model, fmt_num(p.queries), fmt_num(p.stored), fmt_num(p.pending), tokens, est, disk])
    _print_rows(header, rows, f"plan: {study.name} (nothing asked yet) -> {study.output}")
    for p in plans:
        if p.calibration_queries:
            out.print(f"{p.model}: {p.calibration_queries} calibration queries at {fmt_num(p.per_query_s)} s each "
                      f"on this machine (model load {fmt_num(p.load_s)} s, not counted); "
                      f"{fmt_num(p.bytes_per_answer)} bytes per stored answer", highlight=False)
        if p.note:
            out.print(f"{p.model}: {p.note}", highlight=False)
    if any(not p.tokens_counted for p in plans):
        out.print(f"* tokens estimated as characters / {CHARS_PER_TOKEN} (no tokenizer loaded)", highlight=False)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: float) -> str:
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{n:.0f} B"


def _on_ray(study, address: str | None, workers: int | None):
    """The study with ``executor: ray`` (``--ray``/``--ray-workers`` over its own ``ray`` block)."""
    if workers is not None and workers < 1:
        fail("--ray-workers must be at least 1")
    update: dict[str, object] = {}
    if address is not None:
        update["address"] = None if address == "local" else address
    if workers is not None:
        update["workers"] = workers
    return study.model_copy(update={"executor": "ray", "ray": study.ray.model_copy(update=update)})



def _run_json(store_dir: Path, results, report: bool) -> None:
    from valuescope.output.api import Run, write_report

    try:
        runs = [Run(store_dir, r.run_id, result=r) for r in results]
        path = write_report(runs, store_dir / "report") if report and runs else None
    except _user_errors() as exc:
        fail(str(exc))
    _print_json([r.summary(report=path) for r in runs])
    if any(r.failed for r in results):
        err.print("some queries failed; run the same command again to retry them")
        raise typer.Exit(1)


def _open_store(directory: Path):
    from valuescope.output.api import open_store

    return open_store(directory)


def _migrate_if_old(directory: Path) -> None:
    """Migrate a store written by an older valuescope in place (after a backup copy), saying so."""
    from valuescope.output.api import migrate_store

    note = migrate_store(directory)
    if note is not None:
        err.print(note, highlight=False, soft_wrap=True)


@app.command()
@_guarded
def migrate(directory: Annotated[Path, typer.Argument(help="Results directory.")] = Path(DEFAULT_DIR)) -> None:
    """Migrate a store written by an older valuescope to this version's schema (a backup is kept)."""
    from valuescope.store.sqlite import STORE_NAME

    if not (directory / STORE_NAME).is_file():
        fail(f"no valuescope store in {directory} (expected {STORE_NAME})")
    try:
        _migrate_if_old(directory)
    except _user_errors() as exc:
        fail(str(exc))
    out.print(f"{directory / STORE_NAME}: up to date")


def _load_tables(directory: Path, run_id: str):
    """A stored run's tables, or one error line and exit 2."""
    from valuescope.analysis.tables import load_run

    try:
        with _open_store(directory) as store:
            return load_run(store, run_id)
    except _user_errors() as exc:
        fail(str(exc))


def _print_headline(store_dir: Path, run_id: str) -> None:
    from valuescope.analysis.tables import load_run

    with _open_store(store_dir) as store:
        tables = load_run(store, run_id)
    _print_position(tables.model, tables.metrics)
    _print_metrics_or_why(tables, f"{tables.model}: headline")
    _print_congruence(tables)
    _print_notes(tables.metrics)
    _print_geometry(tables)


def _print_congruence(tables) -> None:
    """Evidence instruments (paper 004): accuracy when the truth suits the persona's identity vs not."""
    from valuescope.analysis.metrics.tension import congruence_summary

    bias = congruence_summary(tables.metrics) if not tables.metrics.empty else []
    if len(bias):
        _print_frame(bias.drop(columns=["context"] if bias["context"].nunique() == 1 else []),
                     title=f"{tables.model}: right when the truth suits the identity vs not (hard accuracy, 95% CI)")


def _print_metrics_or_why(tables, title: str) -> None:
    """The headline table, or one line saying why there is none (no answers stored yet)."""
    from valuescope.analysis import metrics as metricsmod

    if tables.metrics.empty:
        out.print(f"{tables.run_id}: no answers stored, so no metrics (run the study again to answer its queries)",
                  highlight=False)
        return
    head = metricsmod.headline(tables.metrics)
    for inst, g in head.groupby("instrument", sort=False):
        for part, frame in _compact(g).items():
            _print_frame(frame, title=f"{title}: {inst}, {part}")


def _print_geometry(tables) -> None:
    """Persona-space and steering rows (docs/geometry.md), when the run has any."""
    m = tables.metrics
    if m is None or m.empty:
        return
    g = m[m["metric"].str.startswith(("geometry_", "steer_")) & ~m["dimension"].str.len().astype(bool)
          | m["metric"].str.startswith("geometry_") & m["dimension"].str.startswith("layer=")]
    if g.empty:
        return
    cols = ["metric", "instrument", "dimension", "context_a", "value", "ci_low", "ci_high", "n", "note"]
    _print_frame(g[cols].rename(columns={"dimension": "layer", "context_a": "context"}),
                 title=f"{tables.model}: persona space and steering (docs/geometry.md)", max_rows=200)


def _compact(head) -> dict:
    """The headline table of one instrument for a terminal, split so each part fits 80 columns: the answers
    (hard: inertia and steerability with CIs, permutation p) and the probabilities (soft) with the answers'
    concentration. Every column keeps its reading (hard = answers, soft = probabilities); value [CI] in one
    cell, in the shared number format; the context column only when there are several."""
    import pandas as pd

    from valuescope.output.numbers import fmt_ci, fmt_num

    def ci(row, m):
        return fmt_ci(row[m], row[f"{m}_low"], row[f"{m}_high"])

    several = head["context"].nunique() > 1
    hard, soft = [], []
    for _, r in head.iterrows():
        key = ({"context": r["context"]} if several else {}) | {"dimension": r["dimension"]}
        hard.append({**key, "inert_hard": ci(r, "inertia_hard"), "steer_hard": ci(r, "steerability_jsd_hard"),
                     "p_hard": fmt_num(r["steerability_p_hard"]), "n": str(int(r["n"]))})
        soft.append({**key, "inert_soft": fmt_num(r["inertia_soft"]), "steer_soft": ci(r, "steerability_jsd_soft"),
                     "p_soft": fmt_num(r["steerability_p_soft"]), "top1_hard": fmt_num(r["top1_share_hard"]),
                     "top2adj_hard": fmt_num(r["top2_adjacent_hard"]), "rank_order": fmt_num(r["rank_order"])})
    def drop_empty(frame):  # a column with no value says nothing (the notes say why)
        return frame[[c for c in frame.columns if not (len(frame) and (frame[c] == "–").all())]]

    return {"answers (hard)": drop_empty(pd.DataFrame(hard)),
            "probabilities (soft) and concentration": drop_empty(pd.DataFrame(soft))}


def _print_frame(df, title: str, max_rows: int = 80) -> None:
    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fi" else "left")
    for _, row in df.head(max_rows).iterrows():
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.tolist()])
    out.print(table)
    if len(df) > max_rows:
        out.print(f"... {len(df) - max_rows} more rows (valuescope export)")


@app.command("ls")
@_guarded
def ls(directory: Annotated[Path, typer.Argument(help="Results directory.")] = Path(DEFAULT_DIR),
       as_json: Annotated[bool, _json_option()] = False) -> None:
    """List the runs in a store (and in stores directly below the directory)."""
    from valuescope.output.api import Results

    try:
        runs = Results(directory).table()
    except _user_errors() as exc:
        fail(str(exc))
    if as_json:
        _print_json(runs.to_dict(orient="records"))
        return
    table = Table(title="runs")
    for col in ("store", "run", "model", "planned", "answered", "reused", "unreadable", "failed", "complete"):
        table.add_column(col, no_wrap=col == "run")
    for r in runs.itertuples(index=False):
        table.add_row(str(r.store), str(r.run_id), str(r.model), str(r.planned), str(r.answered), str(r.reused),
                      str(r.unreadable), str(r.failed), "yes" if r.complete else "no")
    out.print(table)


@app.command()
@_guarded
def show(
    run_ids: Annotated[list[str], typer.Argument(help="Run id (or a unique prefix); two runs of an ablation pair "
                                                 "are also compared.")],
    directory: Annotated[Path, typer.Option("--dir", "-d")] = Path(DEFAULT_DIR),
    all_metrics: Annotated[bool, typer.Option("--all", help="Every metric row, not just the headline.")] = False,
    effects: Annotated[bool, typer.Option("--effects", help="The Hedges' g grid: g [95% CI], q and group sizes "
                                          "per attribute level and dimension.")] = False,
    as_json: Annotated[bool, _json_option()] = False,
) -> None:
    """Print a run's position bias, counts and metric tables (two runs: also their ablation comparison).

    --json: the run's summary object (several runs: {"runs": [...], "comparison": [...] for two})."""
    _where(directory, lambda: run_ids)
    if as_json:
        _show_json(directory, run_ids, all_metrics)
        return
    loaded = [_load_tables(directory, rid) for rid in run_ids]
    for tables in loaded:
        _print_position(tables.model, tables.metrics)
        c = tables.counts
        out.print(Text.assemble(
                  (tables.run_id, "bold"), f" model={tables.model} answered={c['answered']}/{c['planned']} "
                  f"unreadable={c['invalid']} failed={c['failed']} personas={c['personas']} "
                  f"contexts={c['contexts']} outside-letter mass mean={c['outside_mass_mean']:.4f}"))
        methods = ", ".join(f"{n} by {m}" for m, n in c["methods"].items()) or "none"
        out.print(f"answers read: {methods}", highlight=False)
        for source, n in c["reused_from"].items():
            out.print(f"{n} answers reused from run {source}", highlight=False)
        if len(c["methods"]) > 1:
            out.print(Text.assemble(
                      ("mixed readings:", "yellow"), " full distributions (logprobs) and parsed one-hot answers are "
                      "kept apart: metrics use the logprob answers only (see the 'mixed_readings' rows)"))
        _print_metrics_or_why(tables, "headline")
        _print_congruence(tables)
        _print_notes(tables.metrics)
        _print_geometry(tables)
        if effects or all_metrics:
            _print_effects(tables)
        if all_metrics and not tables.metrics.empty:
            _print_frame(tables.metrics, title="all metrics", max_rows=10_000)
    if len(loaded) == 2:
        from valuescope.output.report.data import RunData
        from valuescope.output.report.tables import difference_tables

        for t in difference_tables([RunData(run_id=t.run_id, model=t.model, metrics=t.metrics) for t in loaded]):
            _print_report_table(t)
        _print_comparison(_compare(*loaded))


def _print_effects(tables) -> None:
    """The d grid as the report's table (one per instrument), or why there is none."""
    from valuescope.output.report.data import RunData
    from valuescope.output.report.tables import effects_tables

    shown = effects_tables(RunData(run_id=tables.run_id, model=tables.model, effects=tables.effects))
    if not shown:
        out.print(f"{tables.run_id}: no Hedges' g grid (no persona attributes or no persona scores)", highlight=False)
    for t in shown:
        _print_report_table(t)


def _print_rows(header: list[str], rows: list[list[str]], title: str) -> None:
    """Rows of formatted cells as a table; numbers right-aligned."""
    table = Table(title=title, show_lines=False)
    for j, h in enumerate(header):
        table.add_column(h, justify="left" if j == 0 and not rows[0][0][:1].isdigit() else "right")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _print_report_table(t) -> None:
    """A report table (output.report.tables.Table) in the terminal, its notes below."""
    table = Table(title=t.title, show_lines=False)
    for h, numeric in zip(t.header, t.numeric, strict=True):
        table.add_column(h, justify="right" if numeric else "left")
    for row in t.rows:
        table.add_row(*row)
    out.print(table)
    for n in t.notes:
        out.print(f"note: {n}", highlight=False)


def _show_json(directory: Path, run_ids: list[str], all_metrics: bool) -> None:
    from valuescope.output.api import Run, records

    try:
        runs = [Run(directory, rid) for rid in run_ids]
        data = [r.summary() for r in runs]
        comparison = _compare(runs[0].tables, runs[1].tables) if len(runs) == 2 else None
    except _user_errors() as exc:
        fail(str(exc))
    if all_metrics:
        for d, r in zip(data, runs, strict=True):
            d["metrics"] = records(r.metrics)
    if len(runs) == 1:
        _print_json(data[0])
        return
    _print_json({"runs": data, **({"comparison": records(comparison)} if comparison is not None else {})})


def _print_position(model: str, metrics) -> None:
    """Position bias first: the least share that follows the letter shown, and a warning worded after it."""
    from valuescope.analysis.metrics.position import warning_text

    pb = metrics[metrics["metric"].isin(["position_bias_hard", "position_bias_soft"])] if len(metrics) else metrics
    if pb is None or pb.empty:
        return
    for inst, g in pb.groupby("instrument", sort=True):
        parts = []
        for r in g.itertuples(index=False):
            reading = "answers" if r.metric.endswith("_hard") else "probabilities"
            if r.value == r.value:  # not NaN
                parts.append(f"{reading} {r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]")
            else:
                parts.append(f"{reading} n/a ({r.note})")
        out.print(f"position bias {model} {inst} (least share that follows the letter): "
                  + "; ".join(dict.fromkeys(parts)), highlight=False)
        soft = g[g["metric"] == "position_bias_soft"]["value"]
        text = warning_text(float(soft.iloc[0])) if len(soft) else None
        if text:
            out.print(Text.assemble(("warning:", "bold yellow"), f" {model} {inst}: {text}"))


def _print_notes(metrics) -> None:
    """Why a headline number is missing (one line per distinct note)."""
    if metrics is None or metrics.empty:
        return
    keys = {"inertia_hard", "steerability_jsd_hard", "steerability_jsd_soft", "steerability_p_soft"}
    m = metrics[metrics["metric"].isin(keys) & (metrics["note"].astype(str) != "")]
    for note, g in m.groupby("note", sort=True):
        names = ", ".join(sorted(set(g["metric"])))
        out.print(f"note ({names}): {note}", highlight=False)


def _compare(a, b):
    from valuescope.analysis.metrics.ablation import compare_runs

    return compare_runs(a.responses, b.responses, a.info.get("study", {}), b.info.get("study", {}))


def _print_comparison(frame) -> None:
    kind = str(frame["comparison"].iloc[0]) if len(frame) else "none"
    if kind == "none":
        out.print(f"comparison: {frame['note'].iloc[0] if len(frame) else 'nothing to compare'}", highlight=False)
        return
    cols = ["instrument", "condition", "context", "metric", "dimension", "value", "n", "note"]
    _print_frame(frame[cols], title=f"ablation pair ({kind}): {frame['run_a'].iloc[0]} vs {frame['run_b'].iloc[0]}")


@app.command()
@_guarded
def export(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    directory: Annotated[Path, typer.Option("--dir", "-d")] = Path(DEFAULT_DIR),
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Default: <dir>/export/<run>.")] = None,
) -> None:
    """Write responses, scores, metrics and effects as CSV and Parquet."""
    from valuescope.output.export import write_tables

    _where(directory, lambda: [run_id], out_dir)
    tables = _load_tables(directory, run_id)
    target = out_dir or directory / "export" / tables.run_id
    _WHERE["target"] = target
    for path in write_tables(tables, target):
        out.print(str(path))
    from valuescope.known_truth.truth import run_truth

    try:
        truth = run_truth(tables)
    except _user_errors() as exc:
        fail(f"the synthetic model's truth could not be computed: {exc}")
    if truth is not None:  # a synthetic model: its ground truth beside the measured metrics
        for name, df in zip(("metrics_truth", "effects_truth"), truth, strict=True):
            df.to_csv(target / f"{name}.csv", index=False)
            out.print(str(target / f"{name}.csv"))


def _write_report(store_dir: Path, run_ids: list[str], out_dir: Path) -> Path:
    from valuescope.output.api import Run, write_report

    return write_report([Run(store_dir, rid) for rid in run_ids], out_dir)


@app.command()
@_guarded
def report(
    run_ids: Annotated[list[str], typer.Argument(help="One or more run ids (compared side by side).")],
    directory: Annotated[Path, typer.Option("--dir", "-d")] = Path(DEFAULT_DIR),
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="A file ending in .html, or a directory "
                                                 "(default <dir>/report; the file is named by the run ids).")] = None,
) -> None:
    """Write one self-contained HTML report for one or more runs (its figures in NAME-figures/ beside it)."""
    _where(directory, lambda: run_ids, out_dir or directory / "report")
    try:
        path = _write_report(directory, run_ids, out_dir or directory / "report")
    except _user_errors() as exc:
        fail(str(exc))
    out.print(str(path))


@app.command()
@_guarded
def presets(
    action: Annotated[str | None, typer.Argument(help="'show' to print one preset")] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    as_json: Annotated[bool, _json_option()] = False,
) -> None:
    """List the shipped presets, or print one (valuescope presets show NAME) to copy and edit."""
    from valuescope.study import presets as presetmod

    if action is None and as_json:
        _print_json([{"name": n, "description": d} for n, d in presetmod.list_presets()])
        return
    if action is None:
        table = Table(title="presets")
        table.add_column("name")
        table.add_column("description")
        for n, desc in presetmod.list_presets():
            table.add_row(n, desc)
        out.print(table)
        return
    if action != "show" or not name:
        fail("usage: valuescope presets [show NAME]")
    try:
        text = presetmod.preset_text(name)
        if as_json:
            study = presetmod.load_preset(name)
    except _user_errors() as exc:
        fail(str(exc))
    if as_json:
        desc = dict(presetmod.list_presets())[name]
        _print_json({"name": name, "description": desc, "study": study.model_dump(mode="json"), "yaml": text})
        return
    sys.stdout.write(text)


@app.command("judge-eval")
@_guarded
def judge_eval(
    sample: Annotated[Path, typer.Option("--sample", "-s", help="Labelled replies, JSONL: text, letters and/or "
                                         "labels, gold (a letter, or null for none).")],
    judge: Annotated[str, typer.Option(help="The judge model: a GGUF path or key=value,... (as run --model).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Measure how often a judge model (and the rule-based parser) reads labelled replies right."""
    import json

    from valuescope.backends import extraction
    from valuescope.execution.runner import make_backend

    try:
        samples = extraction.read_labelled_samples(sample)
        spec = _parse_model(judge, "--judge")
        backend = make_backend(spec)
    except _user_errors() as exc:
        fail(str(exc))
    try:
        report = extraction.judge_eval(backend, samples)
    except _user_errors() as exc:
        fail(str(exc))
    finally:
        backend.close()
    if as_json:
        sys.stdout.write(json.dumps({"judge": spec.name, "backend": spec.backend, **report}) + "\n")
        return
    out.print(f"judge-eval: {report['n']} samples from {sample}; judge {spec.name} ({spec.backend})",
              highlight=False)
    out.print(f"judge accuracy: {report['accuracy']:.3f}  rule accuracy: {report['rule_accuracy']:.3f}  "
              f"n: {report['n']}  judge invalid: {report['n_invalid']}", highlight=False)
    conf = report["confusion"]
    cols = sorted({p for row in conf.values() for p in row} | set(conf), key=lambda c: (c == "none", c))
    out.print("confusion (rows: gold, columns: the judge's answer; none = no single option)", highlight=False)
    table = Table()
    table.add_column("gold")
    for c in cols:
        table.add_column(c, justify="right")
    for g in sorted(conf, key=lambda c: (c == "none", c)):
        table.add_row(g, *[str(conf[g].get(c, 0)) for c in cols])
    out.print(table)


@app.command()
@_guarded
def power(
    study_file: Annotated[Path | None, typer.Argument(help="Study YAML (or --preset).")] = None,
    preset: Annotated[str | None, typer.Option(help="A shipped preset instead of a study file.")] = None,
    effect: Annotated[list[str] | None, typer.Option(
        "--effect", "-e", help="attribute=level:dimension=d, e.g. religious_denomination=Orthodox:Tradition=0.3 "
        "(a Cohen's d on the measured score; repeat for several).")] = None,
    synthetic: Annotated[Path | None, typer.Option(help="Synthetic model spec YAML (default: persona_sd 1, "
                                                        "nothing else).")] = None,
    sizes: Annotated[str, typer.Option(help="Numbers of personas to simulate, comma-separated.")]
    = "50,100,200,400,800",
    reps: Annotated[int, typer.Option(help="Replications per size.")] = 50,
    alpha: Annotated[float, typer.Option(help="Significance level of the planned contrast's Welch test.")] = 0.05,
    target: Annotated[float, typer.Option("--power", help="Power to read the needed personas at.")] = 0.8,
    latent: Annotated[bool, typer.Option(help="--effect values are latent shifts, not Cohen's d.")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where power.csv/.png/.html go.")]
    = Path(DEFAULT_DIR) / "power",
) -> None:
    """Simulate a study with planted effects at several sizes: power and CI widths against personas."""
    import time

    from valuescope.known_truth.power import power_analysis
    from valuescope.output.numbers import fmt_num
    from valuescope.output.power_report import needed_lines, power_rows, width_summary, write_power
    from valuescope.study import presets as presetmod
    from valuescope.study.spec import SpecError, load_study
    from valuescope.study.synthetic_spec import SyntheticSpec, load_synthetic, parse_effect

    t0 = time.perf_counter()
    try:
        if study_file is not None and preset is not None:
            raise SpecError("give a study file or --preset, not both")
        study = load_study(study_file) if study_file is not None else presetmod.load_preset(preset or "inertia")
        spec = load_synthetic(synthetic) if synthetic is not None else SyntheticSpec()
        effects = [parse_effect(e) for e in effect or []]
        if not effects:  # the spec's own effects, tested as the latent shifts they are
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
        from valuescope.core.progress import ProgressBar

        progress = ProgressBar(err)
        try:
            table = power_analysis(study, spec, effects, sizes=size_list, reps=reps, alpha=alpha, seed=seed,
                                   latent=latent, progress=progress)
        finally:
            progress.close()
    except _user_errors() as exc:
        fail(str(exc))
    header, rows = power_rows(table)
    if rows:
        _print_rows(header, rows, "power [Monte-Carlo 95% interval]")
        out.print(f"power = share of {reps} replications per size with Welch p < {alpha:g} and the planted sign",
                  highlight=False)
        for line in needed_lines(table, target):
            out.print(line, highlight=False)
    widths = width_summary(table)
    if len(widths):
        w = widths.pivot_table(index="n_personas", columns="metric", values="ci_width")
        _print_rows(["personas", *map(str, w.columns)],
                    [[f"{int(n)}", *(fmt_num(v) for v in r)] for n, r in zip(w.index, w.to_numpy(), strict=True)],
                    "95% CI width (median over dimensions)")
    settings = (f"{study.name}: sizes {size_list}, {reps} replications, alpha {alpha:g}, seed {seed}, "
                f"{'latent shifts' if latent else 'effects as Cohen d on the measured score'}; "
                f"synthetic model {synthetic or 'default (persona_sd 1)'}")
    paths = write_power(table, output, f"valuescope power: {study.name}", settings, target)
    out.print(f"power: {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f} s)", highlight=False)


def entry() -> None:
    """``valuescope``: the app, with a usage error (a missing argument, an unknown option) as one line too."""
    try:
        code = app(prog_name="valuescope", standalone_mode=False)
    except _USAGE_ERROR as exc:
        name = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "valuescope"
        err.print(Text.assemble(("error:", "bold red"), f" {exc.format_message()} (see {name} --help)"))
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
