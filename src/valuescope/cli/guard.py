"""Every command's failures as one line: Ctrl-C and SIGTERM say what is stored and how to continue; a machine
failure (a full disk, a read-only or locked database, memory exhausted) never prints a traceback."""

from __future__ import annotations

import functools
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from valuescope.cli import console

# what the running command reads and writes, for the one line a machine failure or an interrupt gets:
# "store" (the results folder) and "runs" (a callable giving the run ids whose stored answers to count)
WHERE: dict[str, Any] = {}


def where(store: Path, runs: Callable[[], list[str]], target: Path | None = None) -> None:
    """``target``: the folder the command writes its outputs to (export, report)."""
    WHERE.update(store=Path(store), runs=runs, target=target)


def stored() -> tuple[int | None, int | None]:
    """(answers stored, answers planned) of the command's runs, read afresh; None where unknown."""
    from valuescope.output.api import answer_counts

    store, runs = WHERE.get("store"), WHERE.get("runs")
    if store is None or runs is None:
        return None, None
    try:
        return answer_counts(store, runs())
    except Exception:  # noqa: BLE001 - a store that cannot be read now (full disk): say less, never trace back
        return None, None


def interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C or SIGTERM: one line saying what is stored and the command that continues."""
    from valuescope.core.failures import Terminated, continue_command

    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal while we say so changes nothing
        signal.signal(sig, signal.SIG_IGN)
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    done, planned = stored()
    if done is None:
        text = "the answers committed so far are stored"
    else:
        text = f"{done} of {planned} answers are stored" if planned else f"{done} answers are stored"
    console.err.print(f"{what}: {text}; run the same command again to continue: {continue_command()}")
    raise typer.Exit(143 if isinstance(exc, Terminated) else 130)


def machine_failure(exc: Exception) -> None:
    """A full disk, a path that cannot be written, a read-only or locked database, memory exhausted: one
    line (exit 1 for a full disk, I/O or memory, 2 for a path the user can change). Anything else re-raises."""
    from valuescope.core.failures import disk_full_line, explain
    from valuescope.output.operations import store_file

    store = WHERE.get("store")
    database = store_file(store) if store is not None else None
    why = explain(exc, database=database)
    if why is None:
        raise exc
    if why.disk_full:
        name = getattr(exc, "filename", None) or (database if isinstance(exc, sqlite3.Error) else None) \
            or WHERE.get("target") or database or "the results folder"
        console.fail(disk_full_line(name, stored()[0]), 1)
    permission = isinstance(exc, OSError) or "read-only" in why.message or "permission" in why.message
    console.fail(why.message, 2 if permission else 1)


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """Run a command so that every failure is one line: SIGTERM is handled as Ctrl-C (open transactions roll
    back, backends close), and a machine failure (:func:`machine_failure`) never prints a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from valuescope.core.failures import Terminated

        def on_term(signum: int, frame: object) -> None:
            raise Terminated()

        WHERE.clear()
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, on_term)
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            interrupted(exc)
        except (typer.Exit, typer.Abort, console.USAGE_ERROR):
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a machine failure
            machine_failure(exc)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper
