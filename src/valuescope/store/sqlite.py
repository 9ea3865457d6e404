"""SQLite store (WAL): every answer committed as it arrives, keyed, append-only.

Answers belong to their run: the primary key of ``responses`` is ``(run_id, key)``, where ``key``
is the query's content hash (model, persona, context, item text, option order, seed, template...).
Resume = skip keys the run already holds. ``INSERT OR IGNORE`` on that primary key means that
running a study twice, or two processes running it at once, never duplicates a row, and a second
run that asks the very same query as an earlier one never loses its answer: the runner copies the
stored answer into the new run on purpose (``reused_from`` names the run it came from, and the
run's counts say how many) instead of asking the model again.

Failed queries (a backend error, not an unreadable answer) go to ``failures`` with their error and
are retried on the next run; an unreadable answer is a stored response with ``valid = 0``, its raw
text and the reason in ``error``.

The file itself (its tables, schema version, migration, read-only opening) is ``store/schema.py``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from valuescope.core.types import LetterScores, Message, Query
from valuescope.store.records import RunRecord
from valuescope.store.schema import (
    RESPONSE_COLUMNS,
    SCHEMA_VERSION,
    STORE_NAME,
    StoreError,
    connect_readonly,
    iter_stores,
    open_writable,
)
from valuescope.study import identity
from valuescope.study.spec import ModelSpec, Study

__all__ = ["SCHEMA_VERSION", "STORE_NAME", "Store", "StoreError", "Transaction", "iter_stores"]


def _row_scores(row: sqlite3.Row) -> LetterScores:
    """A stored answer as the backend gave it (letter order): the one way a row becomes ``LetterScores``."""
    om = row["outside_mass"]
    return LetterScores(tuple(json.loads(row["probs"])), float("nan") if om is None else om, bool(row["valid"]),
                        row["raw"], row["error"], row["method"])


#: the run options a later run of the same id stores again (identity.RESTATED), as json_set arguments
_RESTATE = ", ".join(f"'$.{k}', json(json_extract(excluded.study_json, '$.{k}'))" for k in identity.RESTATED)


class Store:
    """The SQLite store of one output directory.

    ``migrate``: what to do with a store written by an older valuescope (schema version 0):
    ``True`` migrates it in place after a backup copy; ``False`` refuses with one line that says
    how to migrate (``valuescope migrate DIR``). Nothing is ever reinterpreted silently."""

    def __init__(self, directory: str | Path, *, create: bool = True, migrate: bool = True,
                 readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STORE_NAME
        self.migrated_from: int | None = None
        self.backup: Path | None = None
        self.readonly = readonly
        if (readonly or not create) and not self.path.is_file():
            raise StoreError(f"no valuescope store in {self.directory} (expected {STORE_NAME})")
        if readonly:
            self.db = connect_readonly(self.path)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.db, self.migrated_from, self.backup = open_writable(self.path, migrate=migrate)
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ runs
    def register_run(self, run_id: str, study_name: str, model: str, study_json: dict[str, Any],
                     planned: int, example_prompt: str | None, instruments: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO runs(run_id, study_name, model, created_at, study_json, planned, example_prompt, "
            "instruments_json) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET "
            "planned=excluded.planned, example_prompt=COALESCE(runs.example_prompt, excluded.example_prompt), "
            f"study_json=json_set(runs.study_json, {_RESTATE})",
            (run_id, study_name, model, time.time(), json.dumps(study_json, sort_keys=True), planned,
             example_prompt, json.dumps(instruments, sort_keys=True)),
        )

    def _records(self, where: str = "", args: tuple[Any, ...] = ()) -> list[RunRecord]:
        rows = self.db.execute(
            "SELECT r.run_id, r.study_name, r.model, r.created_at, r.planned, r.study_json, r.instruments_json, "
            "r.example_prompt, "
            "(SELECT COUNT(*) FROM responses x WHERE x.run_id = r.run_id) AS done, "
            "(SELECT COUNT(*) FROM responses x WHERE x.run_id = r.run_id AND x.valid = 0) AS invalid, "
            "(SELECT COUNT(*) FROM responses x WHERE x.run_id = r.run_id AND x.reused_from IS NOT NULL) AS reused, "
            "(SELECT COUNT(*) FROM failures f WHERE f.run_id = r.run_id) AS failed "
            f"FROM runs r {where} ORDER BY r.created_at", args
        ).fetchall()
        out = []
        for row in rows:
            d = dict(row)
            d["study"] = json.loads(d.pop("study_json"))
            d["instruments"] = json.loads(d.pop("instruments_json"))
            out.append(RunRecord(**d))
        return out

    def runs(self) -> list[RunRecord]:
        """Every run in the store, oldest first, with its answer counts."""
        return self._records()

    def has_run(self, run_id: str) -> bool:
        """Whether a run with exactly this id is registered."""
        return self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique prefix; a StoreError naming the runs there are otherwise."""
        found = self._records("WHERE r.run_id = ?", (run_id,))
        if not found:
            ids = [r[0] for r in self.db.execute("SELECT run_id FROM runs ORDER BY created_at")]
            matches = [r for r in ids if r.startswith(run_id)]
            if len(matches) == 1:
                return self.run(matches[0])
            if len(matches) > 1:
                raise StoreError(f"run id prefix {run_id!r} is ambiguous: it matches {', '.join(matches)} "
                                 f"in {self.path}")
            known = ", ".join(ids) or "none"
            raise StoreError(f"no run {run_id!r} in {self.path} (runs: {known})")
        return found[0]

    def reference_run_id(self, study: Study, model: ModelSpec, instruments: Mapping[str, Any] | None) -> str:
        """The stored unsteered reference of a steered study (:func:`valuescope.study.identity.reference_run_id`:
        ``steer.source`` or the reference study's id with these instruments); a StoreError when not stored."""
        ref = identity.reference_run_id(study, model, instruments)
        try:
            return self.run(ref).run_id
        except StoreError:
            if study.steer is not None and study.steer.source is not None:
                raise
            raise StoreError(f"steer: no unsteered run of study {study.name!r} and model {model.name!r} in the "
                             f"store (expected {ref}: run the study without steer first)") from None

    # ------------------------------------------------------------------ responses
    def done_keys(self, run_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM responses WHERE run_id = ?", (run_id,))}

    def write_responses(self, pairs: Sequence[tuple[Query, LetterScores]]) -> int:
        """Write answers in one transaction; returns how many were new."""
        return self._insert_responses([(q, s, None) for q, s in pairs])

    def stored_answers(self, keys: Iterable[str], exclude_run: str) -> dict[str, tuple[LetterScores, str]]:
        """For each key, the earliest answer another run holds and that run, if any."""
        found: dict[str, tuple[LetterScores, str]] = {}
        wanted = list(dict.fromkeys(keys))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            rows = self.db.execute(
                f"SELECT key, run_id, probs, outside_mass, valid, raw, error, method FROM responses "
                f"WHERE key IN ({','.join('?' * len(chunk))}) AND run_id != ? ORDER BY created_at, rowid",
                (*chunk, exclude_run))
            for r in rows:
                if r["key"] not in found:
                    found[r["key"]] = (_row_scores(r), r["run_id"])
        return found

    def reuse_responses(self, pairs: Sequence[tuple[Query, LetterScores, str]]) -> int:
        """Copy answers that other runs hold into this run (``reused_from`` = the source run)."""
        return self._insert_responses(pairs)

    def _insert_responses(self, triples: Sequence[tuple[Query, LetterScores, str | None]]) -> int:
        """One transaction: ``INSERT OR IGNORE`` each (query, answer, source run or None) and clear
        the queries' failures; returns how many rows were new."""
        now = time.time()
        rows = [
            (q.run_id, q.key, q.model, q.persona.id, json.dumps(asdict(q.persona), sort_keys=True),
             json.dumps(asdict(q.context), sort_keys=True), q.instrument, q.item_id, q.part, q.dimension,
             q.wording, json.dumps(list(q.option_order)), q.seed, q.repeat, q.position, q.template,
             json.dumps(list(s.probs)), None if s.outside_mass != s.outside_mass else s.outside_mass,
             int(s.valid), s.raw, s.error, s.method, now, source)
            for q, s, source in triples
        ]
        with self._tx() as cur:
            before = self.db.total_changes
            cur.executemany(f"INSERT OR IGNORE INTO responses ({', '.join(RESPONSE_COLUMNS)}) VALUES "
                            f"({','.join('?' * len(RESPONSE_COLUMNS))})", rows)
            new = self.db.total_changes - before
            cur.executemany("DELETE FROM failures WHERE run_id = ? AND key = ?",
                            [(q.run_id, q.key) for q, _, _ in triples])
        return new

    def reused_counts(self, run_id: str) -> dict[str, int]:
        """How many of a run's answers were copied from each other run."""
        rows = self.db.execute("SELECT reused_from, COUNT(*) FROM responses WHERE run_id = ? AND reused_from IS NOT "
                               "NULL GROUP BY reused_from ORDER BY reused_from", (run_id,))
        return {r[0]: int(r[1]) for r in rows}

    def method_counts(self, run_id: str) -> dict[str, int]:
        """How many of a run's answers each reading method produced (logprobs, generate, judge)."""
        rows = self.db.execute("SELECT method, COUNT(*) FROM responses WHERE run_id = ? GROUP BY method "
                               "ORDER BY method", (run_id,))
        return {r[0]: int(r[1]) for r in rows}

    def answers(self, run_id: str, keys: Sequence[str]) -> dict[str, LetterScores]:
        """Stored answers of a run by key, as the backend gave them (letter order)."""
        out: dict[str, LetterScores] = {}
        keys = list(keys)
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self.db.execute(
                "SELECT key, probs, outside_mass, valid, raw, error, method FROM responses "
                "WHERE run_id = ? AND key IN (" + ",".join("?" * len(part)) + ")", (run_id, *part))
            for r in rows:
                out[r["key"]] = _row_scores(r)
        return out

    def record_failures(self, failures: Iterable[tuple[Query, str]]) -> None:
        now = time.time()
        with self._tx() as cur:
            for q, err in failures:
                cur.execute(
                    "INSERT INTO failures(run_id, key, error, attempts, updated_at) VALUES (?,?,?,1,?) "
                    "ON CONFLICT(run_id, key) DO UPDATE SET error=excluded.error, attempts=failures.attempts+1, "
                    "updated_at=excluded.updated_at",
                    (q.run_id, q.key, err[:2000], now),
                )

    def failures(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM failures WHERE run_id = ?", (run_id,))]

    def responses(self, run_id: str) -> list[dict[str, Any]]:
        """A run's answers in key order: the same rows in the same order however they were written
        (resumed, reused, answered by Ray workers in any order), so every resampling gives the same numbers."""
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM responses WHERE run_id = ? ORDER BY key", (run_id,))]

    def personas(self, run_id: str) -> list[dict[str, Any]]:
        """Each persona of a run once (as stored with its answers)."""
        rows = self.db.execute(
            "SELECT persona_json FROM responses WHERE run_id = ? GROUP BY persona_id ORDER BY persona_id", (run_id,))
        return [json.loads(r[0]) for r in rows]

    # ------------------------------------------------------------------ conversations
    def conversation(self, key: str, run_id: str | None = None) -> tuple[Message, ...] | None:
        """A stored conversation by its key (conversations are shared by every run that needs the
        same one); with ``run_id``, the run is linked to it so that its report shows it."""
        row = self.db.execute("SELECT messages_json FROM conversations WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        if run_id is not None:
            self.db.execute("INSERT OR IGNORE INTO run_conversations (run_id, key) VALUES (?, ?)", (run_id, key))
        return tuple(Message(m["role"], m["content"]) for m in json.loads(row[0]))

    def write_conversation(self, key: str, run_id: str, persona_id: str, context: dict[str, Any],
                           messages: Sequence[Message]) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO conversations VALUES (?,?,?,?,?,?)",
                (key, run_id, persona_id, json.dumps(context, sort_keys=True),
                 json.dumps([m.as_dict() for m in messages]), time.time()),
            )
            cur.execute("INSERT OR IGNORE INTO run_conversations (run_id, key) VALUES (?, ?)", (run_id, key))

    def conversations(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The conversations a run used (made by it or by an earlier run that needed the same one)."""
        return [dict(r) for r in self.db.execute(
            "SELECT c.* FROM conversations c JOIN run_conversations rc ON rc.key = c.key WHERE rc.run_id = ? "
            "ORDER BY c.rowid LIMIT ?", (run_id, limit))]

    # ------------------------------------------------------------------ transactions
    def _tx(self) -> Transaction:
        return Transaction(self.db)

    def transaction(self) -> Transaction:
        """``with store.transaction() as cur:`` one write transaction (``BEGIN IMMEDIATE``), rolled back on an
        error: for the store's other tables (``store.geometry``), so that every write goes through here."""
        return self._tx()


class Transaction:
    """One write transaction on a store's connection: ``BEGIN IMMEDIATE``, then ``COMMIT``, or ``ROLLBACK`` when
    the block (or the COMMIT) raised. SQLite may have rolled the transaction back itself (a full disk, an I/O
    error): then there is nothing to roll back, and the error that did it is the one raised (a ROLLBACK of no
    transaction would replace "database or disk is full" with "cannot rollback")."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Cursor:
        self.cur = self.db.cursor()
        self.cur.execute("BEGIN IMMEDIATE")
        return self.cur

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not exc_type:
            try:
                self.cur.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.cur.execute("ROLLBACK")
