"""The store's file: its tables, its schema version, and opening it (writable, migrating an older store, or
read-only). :class:`valuescope.store.sqlite.Store` reads and writes the answers through the connection opened here.

Schema versions (``PRAGMA user_version``): 0 = valuescope 0.1.0 (``responses.key`` alone was the
primary key, so a second run's answers to the same queries were dropped); 1 = run-scoped keys.
A version-0 store is migrated in place, in one transaction, after a backup copy of the file
(``Store(directory, migrate=True)``, ``valuescope migrate``); a command that only reads refuses it with one
line saying how.
The ``activations`` table (recorded states, ``store.geometry``) belongs to schema 1 too: it is created by the
first write transaction that records a state, so that a store nobody recorded states in never has it.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from valuescope.core.errors import ValuescopeError

STORE_NAME = "valuescope.sqlite"
SCHEMA_VERSION = 1

RESPONSE_COLUMNS = (
    "run_id", "key", "model", "persona_id", "persona_json", "context_json", "instrument", "item_id", "part",
    "dimension", "wording", "option_order", "seed", "repeat", "position", "template", "probs", "outside_mass",
    "valid", "raw", "error", "method", "created_at", "reused_from",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, study_name TEXT NOT NULL, model TEXT NOT NULL, created_at REAL NOT NULL,
    study_json TEXT NOT NULL, planned INTEGER NOT NULL DEFAULT 0, example_prompt TEXT,
    instruments_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS responses (
    run_id TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, persona_id TEXT NOT NULL,
    persona_json TEXT NOT NULL, context_json TEXT NOT NULL, instrument TEXT NOT NULL, item_id TEXT NOT NULL,
    part TEXT NOT NULL, dimension TEXT, wording TEXT, option_order TEXT NOT NULL, seed INTEGER NOT NULL,
    repeat INTEGER NOT NULL, position INTEGER NOT NULL, template TEXT NOT NULL, probs TEXT NOT NULL,
    outside_mass REAL, valid INTEGER NOT NULL, raw TEXT, error TEXT, method TEXT NOT NULL,
    created_at REAL NOT NULL, reused_from TEXT,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX IF NOT EXISTS responses_key ON responses(key);
CREATE TABLE IF NOT EXISTS failures (
    run_id TEXT NOT NULL, key TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS conversations (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, persona_id TEXT NOT NULL, context_json TEXT NOT NULL,
    messages_json TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS run_conversations (
    run_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (run_id, key)
);
"""

ACTIVATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS activations (
    run_id TEXT NOT NULL, key TEXT NOT NULL, persona_id TEXT NOT NULL, persona_json TEXT NOT NULL,
    context TEXT NOT NULL, repeat INTEGER NOT NULL, layer INTEGER NOT NULL, n_tokens INTEGER NOT NULL,
    dim INTEGER NOT NULL, vector BLOB NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (run_id, key)
);
"""


class StoreError(ValuescopeError, RuntimeError):
    """No store, an unknown run, or a database that cannot be used. The message is one line for the user."""


def open_writable(path: Path, *, migrate: bool) -> tuple[sqlite3.Connection, int | None, Path | None]:
    """A connection that reads and writes ``path`` (created with the schema when new): ``(db, the schema version
    migrated from or None, the backup copy or None)``. An older store is migrated first when ``migrate``, else
    refused with one line that says how; a newer one is refused."""
    db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    migrated_from: int | None = None
    backup: Path | None = None
    try:
        db.execute("PRAGMA busy_timeout=60000")
        version = _version(db)
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path} was written by a newer valuescope (store schema {version}, this "
                             f"version reads {SCHEMA_VERSION}); upgrade valuescope")
        if version < SCHEMA_VERSION:
            if not migrate:
                raise StoreError(f"{path} uses store schema {version} of an older valuescope; run "
                                 f"`valuescope migrate {path.parent}` (it keeps a backup copy) or "
                                 "`valuescope run` on it, which migrates it first")
            backup = _migrate(db, path, version)
            migrated_from = version
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        if int(db.execute("PRAGMA user_version").fetchone()[0]) != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.OperationalError:  # a read-only file or folder, a full disk, a lock: the caller says which
        db.close()
        raise
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"{path}: not a usable valuescope store ({exc})") from None
    except BaseException:
        db.close()
        raise
    return db, migrated_from, backup


def _version(db: sqlite3.Connection) -> int:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        has = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='responses'").fetchone()
        if has is None:  # a new, empty file
            return SCHEMA_VERSION
    return version


def _migrate(db: sqlite3.Connection, path: Path, version: int) -> Path:
    """Schema 0 -> 1 in place: a backup copy of the file first (``valuescope.sqlite.v0-backup``),
    then one transaction that rebuilds ``responses`` and ``failures`` with run-scoped keys and
    links every stored conversation to the run that made it. Every row is kept as it was; returns the
    backup's path."""
    if version != 0:
        raise StoreError(f"{path}: no migration from store schema {version}")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = path.with_name(f"{STORE_NAME}.v{version}-backup")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{STORE_NAME}.v{version}-backup{n}")
    shutil.copy2(path, backup)
    cols = ", ".join(c for c in RESPONSE_COLUMNS if c != "reused_from")
    before = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    cur = db.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        cur.execute("ALTER TABLE responses RENAME TO responses_v0")
        cur.execute("ALTER TABLE failures RENAME TO failures_v0")
        cur.execute("DROP INDEX IF EXISTS responses_run")
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                cur.execute(stmt)
        cur.execute(f"INSERT INTO responses ({cols}) SELECT {cols} FROM responses_v0")
        cur.execute("INSERT INTO failures (run_id, key, error, attempts, updated_at) "
                    "SELECT run_id, key, error, attempts, updated_at FROM failures_v0")
        cur.execute("INSERT OR IGNORE INTO run_conversations (run_id, key) SELECT run_id, key FROM conversations")
        after = cur.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        if after != before:
            raise StoreError(f"{path}: migration would change the number of answers ({before} -> {after})")
        cur.execute("DROP TABLE responses_v0")
        cur.execute("DROP TABLE failures_v0")
        cur.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        cur.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # (SQLite rolls back itself on a full disk or an I/O error)
            cur.execute("ROLLBACK")
        raise
    return backup


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that can never write ``path``: ``mode=ro`` (reads a live WAL), or in a folder where
    SQLite cannot create its ``-shm`` file, ``immutable=1`` when no unmerged ``-wal`` file is beside it.
    An empty file or a database without valuescope's tables is refused, never given a schema."""
    if path.stat().st_size == 0:
        raise StoreError(f"{path} is an empty file, not a valuescope store")
    uri = f"file:{quote(str(path.resolve()))}"
    wal = path.with_name(path.name + "-wal")
    tries = [f"{uri}?mode=ro"]
    if not wal.is_file() or wal.stat().st_size == 0:
        tries.append(f"{uri}?mode=ro&immutable=1")
    problem: sqlite3.Error | None = None
    for target in tries:
        try:
            db = sqlite3.connect(target, uri=True, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            problem = exc
            continue
        try:
            db.execute("PRAGMA busy_timeout=60000")
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            db.close()
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise StoreError(f"{path}: not a usable valuescope store ({exc})") from None
            problem = exc
            continue
        if not {"runs", "responses"} <= tables:
            db.close()
            raise StoreError(f"{path} holds no valuescope tables: not a valuescope store")
        if version > SCHEMA_VERSION:
            db.close()
            raise StoreError(f"{path} was written by a newer valuescope (store schema {version}, this version "
                             f"reads {SCHEMA_VERSION}); upgrade valuescope")
        if version < SCHEMA_VERSION:
            db.close()
            raise StoreError(f"{path} uses store schema {version} of an older valuescope; run `valuescope "
                             f"migrate {path.parent}` (it keeps a backup copy) or `valuescope run` on it, which "
                             "migrates it first")
        return db
    if len(tries) == 1:
        raise StoreError(f"{path}: cannot be read ({problem}); its folder holds a -wal file of answers not yet "
                         "merged, which this user cannot merge: read it where the folder is writable")
    raise StoreError(f"{path}: cannot be read ({problem})")


def iter_stores(root: str | Path) -> Iterator[Path]:
    """Store directories at or directly below ``root``."""
    root = Path(root)
    if (root / STORE_NAME).is_file():
        yield root
    if root.is_dir():
        for sub in sorted(root.iterdir()):
            if (sub / STORE_NAME).is_file():
                yield sub
