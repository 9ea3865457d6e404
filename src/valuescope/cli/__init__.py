"""Command line: ``valuescope run | plan | ls | show | export | report | presets | migrate | judge-eval | power``.

A thin layer over the Python API (:mod:`valuescope.output.api`): each module of this package parses one group of
commands' arguments and prints what the API returns (``console``: the consoles, the one-line error and the table
printers; ``guard``: interrupts and machine failures as one line). User errors (a bad study file, an unknown
run, a model that cannot load) print one line and exit with code 2; nothing already stored is touched.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from valuescope import __version__
from valuescope.cli import console, results, run, show, tools
from valuescope.cli.console import fail

__all__ = ["app", "entry", "fail", "main"]

HELP = """valuescope: how a language model's expressed values move, or refuse to move, when it plays personas.

Commands: run, plan, ls, show, export, report, presets, migrate, judge-eval, power.

User errors (a bad study file, an unknown run, a model that cannot load) print one line and exit with code 2; \
nothing already stored is touched."""

app = typer.Typer(add_completion=False, no_args_is_help=False, help=HELP, pretty_exceptions_enable=False)


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        console.out.print(f"valuescope {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        console.out.print(ctx.get_help())


# in the order ``valuescope --help`` lists them
app.command()(run.run)
app.command("plan")(run.plan_cmd)
app.command()(run.migrate)
app.command("ls")(results.ls)
app.command()(show.show)
app.command()(results.export)
app.command()(results.report)
app.command()(tools.presets)
app.command("judge-eval")(tools.judge_eval)
app.command()(tools.power)


def entry() -> None:
    """``valuescope``: the app, with a usage error (a missing argument, an unknown option) as one line too."""
    try:
        code = app(prog_name="valuescope", standalone_mode=False)
    except console.USAGE_ERROR as exc:
        name = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "valuescope"
        console.err.print(Text.assemble(("error:", "bold red"), f" {exc.format_message()} (see {name} --help)"))
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.err.print("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
