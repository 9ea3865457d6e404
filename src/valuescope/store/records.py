"""A stored run as one typed record: what :meth:`Store.run` and :meth:`Store.runs` return, and what the metrics,
the report, the API and the CLI read (``RunTables.info``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from valuescope.study.spec import Study, study_from_dict


@dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table with its answer counts.

    ``study`` and ``instruments`` are the JSON stored with the run (``identity.stored_study``: the settings that
    decide the answers, and each instrument's content); :meth:`spec` is the study validated, once.
    """

    run_id: str
    study_name: str
    model: str
    created_at: float
    planned: int
    done: int = 0  # answers stored (valid or not)
    invalid: int = 0  # stored answers that could not be read
    reused: int = 0  # answers copied from runs that asked the very same queries
    failed: int = 0  # queries left failed (retried on the next run)
    study: dict[str, Any] = field(default_factory=dict)
    instruments: dict[str, Any] = field(default_factory=dict)
    example_prompt: str | None = None

    @property
    def complete(self) -> bool:
        """Every planned query has a stored answer and none is left failed: the one rule for ``valuescope ls``
        and ``Results.table``."""
        return bool(self.done == self.planned and not self.failed)

    @cached_property
    def _spec(self) -> Study:
        return study_from_dict(self.study, source=f"run {self.run_id}")

    def spec(self) -> Study:
        """The stored study validated (a :class:`SpecError` naming the run when this version cannot read it)."""
        return self._spec
