"""The SQL schema of the trajectory store, versioned in ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from exapt.errors import ConfigError
from exapt.sqlite import run_script, user_version

STORE_SCHEMA = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id   TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    updated  REAL NOT NULL,
    config   TEXT NOT NULL,
    status   TEXT NOT NULL,
    summary  TEXT
);
CREATE TABLE IF NOT EXISTS trajectories (
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    trial       INTEGER NOT NULL,
    variant_id  TEXT NOT NULL,
    model       TEXT NOT NULL,
    passed      INTEGER NOT NULL,
    reward      REAL NOT NULL,
    tokens_in   INTEGER NOT NULL,
    tokens_out  INTEGER NOT NULL,
    cost_usd    REAL NOT NULL,
    wall_s      REAL NOT NULL,
    stop_reason TEXT NOT NULL,
    error       TEXT,
    created     REAL NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, trial)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    trial      INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    input      TEXT,
    output     TEXT,
    tokens_in  INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    cost_usd   REAL NOT NULL,
    duration_s REAL NOT NULL,
    started_at REAL NOT NULL,
    PRIMARY KEY (run_id, task_id, trial, idx)
);
CREATE INDEX IF NOT EXISTS trajectories_by_task ON trajectories (task_id);
"""
_SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS blobs (
    run_id  TEXT NOT NULL,
    task_id TEXT NOT NULL,
    trial   INTEGER NOT NULL,
    hash    TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id, trial, hash)
);
CREATE INDEX IF NOT EXISTS trajectories_by_variant ON trajectories (variant_id, task_id);
"""

_OUR_NAMES = {
    "runs", "trajectories", "steps", "blobs", "trajectories_by_task", "trajectories_by_variant"
}  # fmt: skip


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a new file, upgrade an older one, refuse a newer or a foreign
    one (``ConfigError`` naming ``path``). Runs inside the caller's transaction."""
    version = user_version(conn)
    if version > STORE_SCHEMA:
        raise ConfigError(
            f"{path} has trajectory schema {version}; this exapt reads up to {STORE_SCHEMA}",
            hint="upgrade exapt, or use another EXAPT_HOME",
        )
    if version == STORE_SCHEMA:
        return
    if version == 1:  # schema 2 only adds a table and an index
        run_script(conn, _SCHEMA_2)
        conn.execute(f"PRAGMA user_version = {STORE_SCHEMA}")
        return
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    foreign = {n for n in names if not n.startswith("sqlite_")} - _OUR_NAMES
    if foreign:
        raise ConfigError(
            f"{path} is a SQLite file of something else (tables: {', '.join(sorted(foreign))})",
            hint="point EXAPT_HOME at another folder, or move this file away",
        )
    run_script(conn, _SCHEMA + _SCHEMA_2)
    conn.execute(f"PRAGMA user_version = {STORE_SCHEMA}")
