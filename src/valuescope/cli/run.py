"""``valuescope run``, ``plan`` and ``migrate``: run (or resume) a study, plan one before anything is asked,
bring an older store up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from valuescope.cli import console
from valuescope.cli.console import fail, json_option, print_json, print_rows, user_errors
from valuescope.cli.guard import guarded, where
from valuescope.cli.results import write_report_of
from valuescope.cli.show import print_headline
from valuescope.study import DEFAULT_DIR


@guarded
def run(
    study_file: Annotated[Path | None, typer.Argument(help="Study YAML (default: the built-in demo study).")] = None,
    preset: Annotated[str | None, typer.Option(help="Run a shipped preset (see: valuescope presets).")] = None,
    model: Annotated[str | None, typer.Option(help="Replace the study's models: synthetic (the known-truth model, "
                                              "no download), a .gguf path, hf:ORG/NAME, hf:DIR, "
                                              "openai:URL[@MODEL] or key=value,...")] = None,
    scale: Annotated[float, typer.Option(help="Scale personas and seeds by this factor (presets).")] = 1.0,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output directory (store + report).")] = None,
    norms: Annotated[Path | None, typer.Option(help="Compare persona groups with the people of this norms file "
                                               "(human.norms; docs/human_norms.md).")] = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no tables: one summary line "
                                        "per run and the paths written.")] = False,
    as_json: Annotated[bool, json_option()] = False,
    ray: Annotated[str | None, typer.Option(
        "--ray", help="Run on Ray: 'auto' (the running cluster), 'local' (start Ray here) or an address.")] = None,
    ray_workers: Annotated[int | None, typer.Option(
        help="Ray workers, one backend each (default: one per CPU).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Ask nothing: print the plan (as valuescope plan).")]
    = False,
) -> None:
    """Run (or resume) a study and print its headline metrics (--json: a list of run summaries)."""
    from valuescope.output import operations as ops

    try:
        study = ops.adapt_study(ops.load_study(study_file, preset), model, scale, output, norms)
        if ray is not None or ray_workers is not None:
            study = _on_ray(study, ray, ray_workers)
    except user_errors() as exc:
        fail(str(exc))
    if dry_run:
        print_plan(study, calibrate=8)
        return
    where(Path(study.output), lambda: ops.run_ids(study))
    try:
        migrate_if_old(Path(study.output))
    except user_errors() as exc:
        fail(str(exc))
    from valuescope.core.progress import ProgressBar

    progress = None if quiet else ProgressBar(console.err)
    try:
        results = ops.run_study(study, progress=progress)
    except user_errors() as exc:
        fail(str(exc))
    finally:
        if progress is not None:
            progress.close()
    for line in (line for res in results for line in res.notes):
        console.err.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)
    store_dir = Path(study.output)
    if as_json:
        _run_json(store_dir, results, report and study.report)
        return
    read = {}  # the runs whose tables print_headline computed: the report reuses them
    for res in results:
        console.out.print(Text.assemble(
            (res.run_id, "bold"), f": {res.planned} queries planned, {res.already_done} already stored, "
            f"{res.new} new, {res.invalid} unreadable, {res.failed} failed"
            + (f", {res.elsewhere} stored meanwhile by another process" if res.elsewhere else "")
            + f" ({res.elapsed_s:.1f} s)"))
        for source, n in res.reused_from.items():
            console.out.print(f"  {n} answers reused from run {source} (the very same queries; not asked again)",
                              highlight=False)
        if res.geometry.get("states") or res.geometry.get("note"):
            g = res.geometry
            console.out.print(
                f"states: {g.get('states', 0)} recorded at layers {g.get('layers', [])} in "
                f"{g.get('seconds', 0.0):.1f} s ({g.get('bytes', 0) / 1e6:.2f} MB float32) {g.get('note', '')}",
                highlight=False)
        if not quiet:
            read[res.run_id] = print_headline(store_dir, res.run_id)
    if report and study.report:
        paths = write_report_of(store_dir, [r.run_id for r in results], store_dir / "report", read)
        console.out.print(f"report: {paths}")
    from valuescope.core.failures import quoted

    console.out.print(f"results: {store_dir / 'valuescope.sqlite'}  (valuescope show RUN --dir {quoted(store_dir)})")
    if any(r.failed for r in results):
        console.err.print("some queries failed; run the same command again to retry them")
        raise typer.Exit(1)


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
    """Plan a study before anything is asked: queries, prompt tokens, estimated time and disk.

    Per model: the queries, the prompt tokens, the estimated time on this machine (from a quick calibration)
    and the disk the answers will take."""
    from valuescope.output import operations as ops

    try:
        study = ops.adapt_study(ops.load_study(study_file, preset), model, scale, output)
    except user_errors() as exc:
        fail(str(exc))
    if calibrate < 0:
        fail("--calibrate must be 0 or more")
    print_plan(study, calibrate)


def print_plan(study, calibrate: int) -> None:
    from valuescope.output import operations as ops
    from valuescope.output.numbers import fmt_num

    try:
        plans = ops.plan(study, calibrate)
    except user_errors() as exc:
        fail(str(exc))
    header = ["model", "queries", "stored", "to ask", "prompt tokens", "time (est.)", "disk (est.)"]
    rows = []
    for p in plans:
        tokens = fmt_num(p.prompt_tokens) + ("" if p.tokens_counted else " *")
        est = "–" if p.estimated_s != p.estimated_s else _duration(p.estimated_s)
        disk = "–" if p.disk_bytes != p.disk_bytes else _size(p.disk_bytes)
        rows.append([p.model, fmt_num(p.queries), fmt_num(p.stored), fmt_num(p.pending), tokens, est, disk])
    print_rows(header, rows, f"plan: {study.name} (nothing asked yet) -> {study.output}")
    for p in plans:
        if p.calibration_queries:
            console.out.print(
                f"{p.model}: {p.calibration_queries} calibration queries at {fmt_num(p.per_query_s)} s each "
                f"on this machine (model load {fmt_num(p.load_s)} s, not counted); "
                f"{fmt_num(p.bytes_per_answer)} bytes per stored answer", highlight=False)
        if p.note:
            console.out.print(f"{p.model}: {p.note}", highlight=False)
    if any(not p.tokens_counted for p in plans):
        console.out.print(f"* tokens estimated as characters / {ops.chars_per_token()} (no tokenizer loaded)",
                          highlight=False)


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
    except user_errors() as exc:
        fail(str(exc))
    print_json([r.summary(report=path) for r in runs])
    if any(r.failed for r in results):
        console.err.print("some queries failed; run the same command again to retry them")
        raise typer.Exit(1)


def migrate_if_old(directory: Path) -> None:
    """Migrate a store written by an older valuescope in place (after a backup copy), saying so."""
    from valuescope.output.api import migrate_store

    note = migrate_store(directory)
    if note is not None:
        console.err.print(note, highlight=False, soft_wrap=True)


@guarded
def migrate(directory: Annotated[Path, typer.Argument(help="Results directory.")] = Path(DEFAULT_DIR)) -> None:
    """Migrate a store written by an older valuescope to this version's schema (a backup is kept)."""
    from valuescope.output.operations import store_file

    database = store_file(directory)
    if not database.is_file():
        fail(f"no valuescope store in {directory} (expected {database.name})")
    try:
        migrate_if_old(directory)
    except user_errors() as exc:
        fail(str(exc))
    console.out.print(f"{database}: up to date")
