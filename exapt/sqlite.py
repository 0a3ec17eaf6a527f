"""The SQLite plumbing exapt's stores share (the trajectory store, the archive, the
evaluation cache): one connection per store, shared by its threads under one lock, and
explicit transactions.

A store opens its connection with ``connect`` (autocommit mode, so a transaction starts
only where ``transaction`` starts one; a 30 s busy timeout for other processes' writers),
sets ``use_wal`` on it, and reads and writes only through ``transaction`` and ``query``
with its lock (a ``threading.RLock``: a transaction may call ``query``). A leaf: imports
nothing of exapt.

Example:
    conn, lock = connect(path), threading.RLock()
    use_wal(conn)
    with transaction(conn, lock) as tx:
        tx.execute("INSERT INTO meta VALUES (?, ?)", ("k", "v"))
    query(conn, lock, "SELECT value FROM meta WHERE key = ?", ("k",))  # [("v",)]
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

Lock = AbstractContextManager[Any]


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection to ``path`` that any thread may use (under the store's lock), in
    autocommit mode, waiting up to 30 s for another writer."""
    return sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)


def use_wal(conn: sqlite3.Connection) -> None:
    """WAL journal, synchronous NORMAL, 30 s busy timeout. Run outside a transaction."""
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")  # must run outside a transaction
    conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL


@contextmanager
def transaction(conn: sqlite3.Connection, lock: Lock) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT under ``lock``; ROLLBACK on any error, which is re-raised."""
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def query(
    conn: sqlite3.Connection, lock: Lock, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """All rows of ``sql`` with ``params``, read under ``lock``."""
    with lock:
        return conn.execute(sql, params).fetchall()


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version the file records (``PRAGMA user_version``; 0 for a new file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run the ``;``-separated statements of ``script`` in the open transaction."""
    # executescript() would COMMIT the open transaction first: run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)
