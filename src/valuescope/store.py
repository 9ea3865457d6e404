"""SQLite store (WAL): every answer committed as it arrives, keyed, append-only.

Resume = skip keys already stored. ``INSERT OR IGNORE`` on the primary key means that running a
study twice, or two processes running it at once, never duplicates a row. Failed queries (a
backend error, not an unreadable answer) go to ``failures`` with their error and are retried on
the next run; an unreadable answer is a stored response with ``valid = 0`` and its raw text.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from valuescope.types import LetterScores, Message, Query

STORE_NAME = "valuescope.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, study_name TEXT NOT NULL, model TEXT NOT NULL, created_at REAL NOT NULL,
    study_json TEXT NOT NULL, planned INTEGER NOT NULL DEFAULT 0, example_prompt TEXT,
    instruments_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, model TEXT NOT NULL, persona_id TEXT NOT NULL,
    persona_json TEXT NOT NULL, context_json TEXT NOT NULL, instrument TEXT NOT NULL, item_id TEXT NOT NULL,
    part TEXT NOT NULL, dimension TEXT, wording TEXT, option_order TEXT NOT NULL, seed INTEGER NOT NULL,
    repeat INTEGER NOT NULL, position INTEGER NOT NULL, template TEXT NOT NULL, probs TEXT NOT NULL,
    outside_mass REAL, valid INTEGER NOT NULL, raw TEXT, error TEXT, method TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_run ON responses(run_id);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, persona_id TEXT NOT NULL, context_json TEXT NOT NULL,
    messages_json TEXT NOT NULL, created_at REAL NOT NULL
);
"""


class StoreError(RuntimeError):
    pass


class Store:
    def __init__(self, directory: str | Path, *, create: bool = True) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STORE_NAME
        if not create and not self.path.is_file():
            raise StoreError(f"no valuescope store in {self.directory} (expected {STORE_NAME})")
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=60000")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable valuescope store ({exc})") from None
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
            "planned=excluded.planned, example_prompt=COALESCE(runs.example_prompt, excluded.example_prompt)",
            (run_id, study_name, model, time.time(), json.dumps(study_json, sort_keys=True), planned,
             example_prompt, json.dumps(instruments, sort_keys=True)),
        )

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT r.run_id, r.study_name, r.model, r.created_at, r.planned, "
            "(SELECT COUNT(*) FROM responses x WHERE x.run_id = r.run_id) AS done, "
            "(SELECT COUNT(*) FROM responses x WHERE x.run_id = r.run_id AND x.valid = 0) AS invalid, "
            "(SELECT COUNT(*) FROM failures f WHERE f.run_id = r.run_id) AS failed "
            "FROM runs r ORDER BY r.created_at"
        ).fetchall()
        return [dict(r) for r in rows]

    def run(self, run_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            matches = [r["run_id"] for r in self.runs() if r["run_id"].startswith(run_id)]
            if len(matches) == 1:
                return self.run(matches[0])
            known = ", ".join(r["run_id"] for r in self.runs()) or "none"
            raise StoreError(f"no run {run_id!r} in {self.path} (runs: {known})")
        out = dict(row)
        out["study"] = json.loads(out.pop("study_json"))
        out["instruments"] = json.loads(out.pop("instruments_json"))
        return out

    # ------------------------------------------------------------------ responses
    def done_keys(self, run_id: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT key FROM responses WHERE run_id = ?", (run_id,))}

    def write_responses(self, pairs: Sequence[tuple[Query, LetterScores]]) -> int:
        """Write answers in one transaction; returns how many were new."""
        now = time.time()
        rows = [
            (q.key, q.run_id, q.model, q.persona.id, json.dumps(asdict(q.persona), sort_keys=True),
             json.dumps(asdict(q.context), sort_keys=True), q.instrument, q.item_id, q.part, q.dimension,
             q.wording, json.dumps(list(q.option_order)), q.seed, q.repeat, q.position, q.template,
             json.dumps(list(s.probs)), None if s.outside_mass != s.outside_mass else s.outside_mass,
             int(s.valid), s.raw, s.error, s.method, now)
            for q, s in pairs
        ]
        with self._tx() as cur:
            before = self.db.total_changes
            cur.executemany("INSERT OR IGNORE INTO responses VALUES (" + ",".join("?" * 23) + ")", rows)
            new = self.db.total_changes - before
            cur.executemany("DELETE FROM failures WHERE key = ?", [(q.key,) for q, _ in pairs])
        return new

    def record_failures(self, failures: Iterable[tuple[Query, str]]) -> None:
        now = time.time()
        with self._tx() as cur:
            for q, err in failures:
                cur.execute(
                    "INSERT INTO failures(key, run_id, error, attempts, updated_at) VALUES (?,?,?,1,?) "
                    "ON CONFLICT(key) DO UPDATE SET error=excluded.error, attempts=failures.attempts+1, "
                    "updated_at=excluded.updated_at",
                    (q.key, q.run_id, err[:2000], now),
                )

    def failures(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM failures WHERE run_id = ?", (run_id,))]

    def responses(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM responses WHERE run_id = ? ORDER BY rowid", (run_id,))]

    # ------------------------------------------------------------------ conversations
    def conversation(self, key: str) -> tuple[Message, ...] | None:
        row = self.db.execute("SELECT messages_json FROM conversations WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return tuple(Message(m["role"], m["content"]) for m in json.loads(row[0]))

    def write_conversation(self, key: str, run_id: str, persona_id: str, context: dict[str, Any],
                           messages: Sequence[Message]) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT OR IGNORE INTO conversations VALUES (?,?,?,?,?,?)",
                (key, run_id, persona_id, json.dumps(context, sort_keys=True),
                 json.dumps([m.as_dict() for m in messages]), time.time()),
            )

    def conversations(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM conversations WHERE run_id = ? ORDER BY rowid LIMIT ?", (run_id, limit))]

    # ------------------------------------------------------------------ internals
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Cursor:
            self.cur = self.db.cursor()
            self.cur.execute("BEGIN IMMEDIATE")
            return self.cur

        def __exit__(self, exc_type: object, *_: object) -> None:
            self.cur.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> Store._Tx:
        return Store._Tx(self.db)


def iter_stores(root: str | Path) -> Iterator[Path]:
    """Store directories at or directly below ``root``."""
    root = Path(root)
    if (root / STORE_NAME).is_file():
        yield root
    if root.is_dir():
        for sub in sorted(root.iterdir()):
            if (sub / STORE_NAME).is_file():
                yield sub
