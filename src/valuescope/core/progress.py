"""The progress bar of a run: a rich bar on stderr in a terminal, a live bar in a Jupyter notebook.

One class for the CLI and the Python API, so a script and ``valuescope run`` show the same bar. In a
notebook rich renders the bar in the cell's output and updates it in place (through ``ipywidgets``
where installed), instead of printing a line per update.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


class ProgressBar:
    """A callable ``(phase, done, total)`` for :func:`valuescope.execution.runner.run_study`;
    call :meth:`close` at the end."""

    def __init__(self, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        # in a notebook the finished bar stays in the cell's output; in a terminal it is cleared
        # the phase is printed literally (markup=False): a name holding "[...]" shows as it is
        self.p = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=console, transient=not console.is_jupyter)
        self.task: TaskID | None = None
        self.p.start()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.p.add_task(phase, total=total)
        self.p.update(self.task, description=phase, completed=done, total=total)

    def close(self) -> None:
        self.p.stop()
