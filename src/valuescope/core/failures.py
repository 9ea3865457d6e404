"""One line for each failure of the machine under a command: a path that cannot be written, a full
disk (or a file-size limit), a database that is read-only or locked, memory exhausted.

:func:`explain` turns an ``OSError``, ``sqlite3.Error`` or ``MemoryError`` into that line (the
CLI prints it after ``error:``), or None for anything else, which is a bug and keeps its traceback.
Nothing here imports the rest of valuescope: the callers say which file they were writing.
"""

from __future__ import annotations

import errno
import os
import resource
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

# sqlite3 result codes (https://sqlite.org/rescode.html); Python >= 3.11 exposes them on the exception
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_BUSY = 5
_SQLITE_NOTADB = 26

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
LOW_SPACE_BYTES = 50_000_000  # an I/O error on a volume with less free space than this reads as a full disk


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch scheduler's warning before SIGKILL), raised where Ctrl-C raises KeyboardInterrupt, so
    that every open transaction is rolled back and every backend closed the same way."""


@dataclass(frozen=True)
class Explained:
    """A failure in words: ``message`` (one line), and whether it is a full disk (or file-size limit)."""

    message: str
    disk_full: bool = False


def continue_command() -> str:
    """The command line that was run, shell-quoted, to run again: ``valuescope run 'my study.yaml' -q``."""
    return shlex.join(["valuescope", *sys.argv[1:]])


def quoted(path: str | Path) -> str:
    """A path as a shell word (quoted when it holds spaces or shell characters)."""
    return shlex.quote(str(path))


def disk_full_line(path: str | Path, stored: int | None) -> str:
    what = f"{stored} answers are stored" if stored is not None else "the answers written so far are stored"
    return f"disk full (or file size limit) while writing {path}: {what}, run the same command again to continue"


def _size_limited() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return soft != resource.RLIM_INFINITY


def _low_space(path: Path) -> bool:
    for p in (path, *path.parents):
        try:
            st = os.statvfs(p)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES
    return False


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return path


def explain_os(exc: OSError, target: str | Path | None = None) -> Explained:
    """An ``OSError`` while reading or writing ``exc.filename`` (or ``target``)."""
    name = exc.filename if exc.filename is not None else target
    path = Path(os.fsdecode(name)) if name is not None else None
    where = f" {path}" if path is not None else ""
    code = exc.errno
    if code in DISK_FULL_ERRNOS:
        return Explained(f"disk full (or file size limit) while writing{where}", disk_full=True)
    if code in (errno.EACCES, errno.EPERM):
        return Explained(f"permission denied:{where} cannot be written (or read) by this user")
    if code == errno.EROFS:
        return Explained(f"read-only file system:{where} cannot be written")
    if code == errno.EEXIST:
        return Explained(f"{path} exists and is a file, not a folder")
    if code == errno.ENOTDIR and path is not None:
        blocker = _nearest_existing(path)
        if blocker != path and not blocker.is_dir():
            return Explained(f"{path} is under {blocker}, which is a file, not a folder")
        return Explained(f"{path}: a part of this path is a file, not a folder")
    if code == errno.EISDIR:
        return Explained(f"{path} is a folder, not a file")
    if code == errno.ENOENT:
        return Explained(f"no such file or folder:{where}")
    if code == errno.ENAMETOOLONG:
        return Explained(f"file name too long:{where}")
    return Explained(f"{exc.strerror or type(exc).__name__}:{where}")


def explain_sqlite(exc: sqlite3.Error, database: str | Path | None = None) -> Explained:
    """A ``sqlite3`` error on ``database`` (the store file)."""
    path = Path(database) if database is not None else None
    where = str(path) if path is not None else "the store"
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if primary == _SQLITE_FULL or "database or disk is full" in text:
        return Explained(f"disk full (or file size limit) while writing {where}", disk_full=True)
    if primary == _SQLITE_IOERR or "disk i/o error" in text:
        if _size_limited() or (path is not None and _low_space(path.parent)):
            return Explained(f"disk full (or file size limit) while writing {where}", disk_full=True)
        return Explained(f"disk I/O error while reading or writing {where}")
    if primary == _SQLITE_READONLY or "readonly database" in text:
        return Explained(f"{where} is read-only for this user: answers cannot be stored (check the file's and "
                         "its folder's permissions, or write to another folder with -o)")
    if primary == _SQLITE_CANTOPEN or "unable to open database file" in text:
        folder = path.parent if path is not None else None
        if folder is not None and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            return Explained(f"permission denied: cannot create {where} (its folder {folder} is not writable by "
                             "this user)")
        return Explained(f"cannot open {where} (check that its folder exists and is writable)")
    if primary == _SQLITE_BUSY or "database is locked" in text:
        return Explained(f"{where} is locked by another process (waited 60 s); try again when it is done")
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return Explained(f"{where}: not a usable valuescope store ({exc})")
    return Explained(f"{where}: database error ({exc})")


def explain(exc: BaseException, *, target: str | Path | None = None,
            database: str | Path | None = None) -> Explained | None:
    """The one line for a machine failure, or None when ``exc`` is not one (a bug: keep its traceback)."""
    if isinstance(exc, sqlite3.Error):
        return explain_sqlite(exc, database)
    if isinstance(exc, OSError):
        return explain_os(exc, target)
    if isinstance(exc, MemoryError):
        return Explained("out of memory: the study is too large for this machine (see docs/reliability.md for the "
                         "size limits)")
    return None
