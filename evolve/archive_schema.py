"""The SQL schema of an archive (``archive.sqlite``), versioned in ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exapt.errors import ConfigError
from exapt.sqlite import run_script, user_version

ARCHIVE_SCHEMA = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    variant_id   TEXT PRIMARY KEY,
    parent_ids   TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    slot         INTEGER NOT NULL,
    operator     TEXT NOT NULL,
    status       TEXT NOT NULL,
    created      REAL NOT NULL,
    updated      REAL NOT NULL,
    data         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scores (
    variant_id TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    split      TEXT NOT NULL,
    reward     REAL NOT NULL,
    passed     INTEGER NOT NULL,
    fresh      INTEGER NOT NULL,
    cost_usd   REAL NOT NULL,
    tokens     INTEGER NOT NULL,
    error      TEXT,
    finished   REAL NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (variant_id, task_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    generation INTEGER NOT NULL,
    slot       INTEGER NOT NULL,
    parent_id  TEXT NOT NULL,
    operator   TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    variant_id TEXT,
    reason     TEXT,
    cost_usd   REAL NOT NULL,
    tokens     INTEGER NOT NULL,
    created    REAL NOT NULL,
    PRIMARY KEY (generation, slot)
);
"""


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file; refuse a newer one (``ConfigError`` naming
    ``path``). Runs inside the caller's transaction."""
    version = user_version(conn)
    if version > ARCHIVE_SCHEMA:
        raise ConfigError(
            f"{path} has archive schema {version}; this exapt reads up to {ARCHIVE_SCHEMA}",
            hint="upgrade exapt",
        )
    run_script(conn, _SCHEMA)
    conn.execute(f"PRAGMA user_version = {ARCHIVE_SCHEMA}")
