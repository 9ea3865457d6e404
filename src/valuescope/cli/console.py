"""The terminal: the two consoles, the one-line error, JSON output and the table printers every command shares.

Commands print through ``console.out`` / ``console.err`` looked up at call time, so a test (or the screenshot
script) may swap ``valuescope.cli.console.out`` for a console of its own width.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# piped output (scripts, CI logs) gets wide lines instead of wrapped table cells. Every text is printed
# literally (markup=False, emoji=False): a path, run id, instrument name or message holding "[...]" or
# ":name:" shows as it is; styles are given as Text objects, never as markup.
out = Console(width=None if sys.stdout.isatty() else 200, markup=False, emoji=False, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200, markup=False, emoji=False, highlight=False,
              soft_wrap=True)

# click's base of usage errors (a missing argument, an unknown option), as the click that typer uses defines it
USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def print_json(data: object) -> None:
    """One strict JSON document on stdout (NaN -> null), nothing else."""
    import json

    from valuescope.output.api import json_safe

    sys.stdout.write(json.dumps(json_safe(data), allow_nan=False) + "\n")


def json_option():
    return typer.Option("--json", help="Print one JSON document on stdout instead of tables.")


def fail(message: str, code: int = 2) -> None:
    err.print(Text.assemble(("error:", "bold red"), " ", " ".join(str(message).splitlines())))
    raise typer.Exit(code)


def user_errors():
    """The errors a user can act on, each printed as one line (:data:`valuescope.output.operations.USER_ERRORS`)."""
    from valuescope.output.operations import USER_ERRORS

    return USER_ERRORS


def print_rows(header: list[str], rows: list[list[str]], title: str) -> None:
    """Rows of formatted cells as a table; numbers right-aligned."""
    table = Table(title=title, show_lines=False)
    for j, h in enumerate(header):
        table.add_column(h, justify="left" if j == 0 and not rows[0][0][:1].isdigit() else "right")
    for row in rows:
        table.add_row(*row)
    out.print(table)


def print_report_table(t) -> None:
    """A report table (output.report.tables.Table) in the terminal, its notes below."""
    table = Table(title=t.title, show_lines=False)
    for h, numeric in zip(t.header, t.numeric, strict=True):
        table.add_column(h, justify="right" if numeric else "left")
    for row in t.rows:
        table.add_row(*row)
    out.print(table)
    for n in t.notes:
        out.print(f"note: {n}", highlight=False)


def print_frame(df, title: str, max_rows: int = 80) -> None:
    """A DataFrame as a table, numbers in the shared format (output.numbers: 3 significant digits, "–" for
    NaN)."""
    from valuescope.output.numbers import fmt_num

    table = Table(title=title, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fi" else "left")
    for _, row in df.head(max_rows).iterrows():
        table.add_row(*[fmt_num(v) if isinstance(v, float) else str(v) for v in row.tolist()])
    out.print(table)
    if len(df) > max_rows:
        out.print(f"... {len(df) - max_rows} more rows (valuescope export)")


def stored_run(directory: Path, run_id: str):
    """A stored run (:class:`valuescope.output.api.Run`) with its tables read, or one error line and exit 2."""
    from valuescope.output.api import Run

    try:
        run = Run(directory, run_id)
        run.tables  # noqa: B018 - read now, so that a run that cannot be read is one error line here
    except user_errors() as exc:
        fail(str(exc))
    return run
