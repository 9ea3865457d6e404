"""``valuescope ls``, ``export`` and ``report``: the runs in a results folder, a run's tables as files, the HTML
report of one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuescope.cli import console
from valuescope.cli.console import fail, json_option, print_json, stored_run, user_errors
from valuescope.cli.guard import WHERE, guarded, where
from valuescope.study import DEFAULT_DIR


@guarded
def ls(directory: Annotated[Path, typer.Argument(help="Results directory.")] = Path(DEFAULT_DIR),
       as_json: Annotated[bool, json_option()] = False) -> None:
    """List the runs in a store (and in stores directly below the directory)."""
    from valuescope.output.api import Results

    try:
        runs = Results(directory).table()
    except user_errors() as exc:
        fail(str(exc))
    if as_json:
        print_json(runs.to_dict(orient="records"))
        return
    table = Table(title="runs")
    for col in ("store", "run", "model", "planned", "answered", "reused", "unreadable", "failed", "complete"):
        table.add_column(col, no_wrap=col == "run")
    for r in runs.itertuples(index=False):
        table.add_row(str(r.store), str(r.run_id), str(r.model), str(r.planned), str(r.answered), str(r.reused),
                      str(r.unreadable), str(r.failed), "yes" if r.complete else "no")
    console.out.print(table)


@guarded
def export(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    directory: Annotated[Path, typer.Option("--dir", "-d")] = Path(DEFAULT_DIR),
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Default: <dir>/export/<run>.")] = None,
) -> None:
    """Write responses, scores, metrics and effects as CSV and Parquet."""
    where(directory, lambda: [run_id], out_dir)
    run = stored_run(directory, run_id)
    target = out_dir or directory / "export" / run.run_id
    WHERE["target"] = target
    for path in run.export(target):
        console.out.print(str(path))
    try:
        truth = run.truth()
    except user_errors() as exc:
        fail(f"the synthetic model's truth could not be computed: {exc}")
    if truth is not None:  # a synthetic model: its ground truth beside the measured metrics
        for name, df in zip(("metrics_truth", "effects_truth"), truth, strict=True):
            df.to_csv(target / f"{name}.csv", index=False)
            console.out.print(str(target / f"{name}.csv"))


def write_report_of(store_dir: Path, run_ids: list[str], out_dir: Path, runs: dict | None = None) -> Path:
    """The HTML report of these runs of one store (``valuescope report``, and ``run`` at its end: ``runs``, the
    ``Run`` objects it already read by id, whose tables are then not computed again)."""
    from valuescope.output.api import Run, write_report

    runs = runs or {}
    return write_report([runs.get(rid) or Run(store_dir, rid) for rid in run_ids], out_dir)


@guarded
def report(
    run_ids: Annotated[list[str], typer.Argument(help="One or more run ids (compared side by side).")],
    directory: Annotated[Path, typer.Option("--dir", "-d")] = Path(DEFAULT_DIR),
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="A file ending in .html, or a directory "
                                                 "(default <dir>/report; the file is named by the run ids).")] = None,
) -> None:
    """Write one self-contained HTML report for one or more runs (its figures in NAME-figures/ beside it)."""
    where(directory, lambda: run_ids, out_dir or directory / "report")
    try:
        path = write_report_of(directory, run_ids, out_dir or directory / "report")
    except user_errors() as exc:
        fail(str(exc))
    console.out.print(str(path))
