"""``EvalCache``: every finished (variant, task) evaluation, shared by all runs and archives.

One SQLite file (WAL), ``<home>/evalcache.sqlite`` by default. A row is keyed by what
decides the result: the variant id (its file tree), the task id *and content* (an edited
task file is a new task), the model, the seed and the scorer version. A key that is in the
cache is never evaluated again (DESIGN: "the same variant on the same task is evaluated
once"). Results with an ``error`` (load failure, crash, hang) are not cached: they say
nothing about the variant's quality that a retry could not change.

``origin`` names the archive (by its uid) that paid for the evaluation, so an archive's
spend is the sum over its own rows, also after a crash between the cache write and the
archive write.

Example:
    cache = EvalCache()
    key = cache_key(variant.id, task, "local", 0, "humaneval:1a2b")
    cache.get(key)  # (result, origin) or None
    cache.put(key, result, model="local", seed=0, scorer="...", origin=archive.uid)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from exapt import sqlite
from exapt.errors import ConfigError
from exapt.evolve.base import TaskResult
from exapt.records import Task

CACHE_SCHEMA = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key            TEXT PRIMARY KEY,
    variant_id     TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    model          TEXT NOT NULL,
    seed           INTEGER NOT NULL,
    scorer_version TEXT NOT NULL,
    origin         TEXT NOT NULL,
    created        REAL NOT NULL,
    cost_usd       REAL NOT NULL,
    data           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_origin ON results (origin);
"""


def task_hash(task: Task) -> str:
    """Hash of everything in a task that can change its score (hidden data included)."""
    canonical = task.model_dump_json(by_alias=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def scorer_version(scorer: object) -> str:
    """``module.Class:version``: the scorer's own ``version`` attribute when it has one,
    else a hash of its module's source, so that changing the scoring code invalidates the
    cache."""
    cls = type(scorer)
    version = getattr(scorer, "version", None)
    if version is None:
        try:
            source = inspect.getsource(inspect.getmodule(cls) or cls)
        except (OSError, TypeError):
            source = cls.__qualname__
        version = hashlib.sha256(source.encode()).hexdigest()[:8]
    return f"{cls.__module__}.{cls.__qualname__}:{version}"


def cache_key(variant_id: str, task: Task, model: str, seed: int, scorer: str) -> str:
    parts = [variant_id, task.id, task_hash(task), model, str(seed), scorer]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class EvalCache:
    """The shared results table (see the module docstring). Thread-safe."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from exapt.paths import home

            path = home() / "evalcache.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite.connect(self.path)
        try:
            sqlite.use_wal(self._conn)
            with sqlite.transaction(self._conn, self._lock) as conn:
                version = sqlite.user_version(conn)
                if version > CACHE_SCHEMA:
                    raise ConfigError(
                        f"{self.path} has cache schema {version}; this exapt reads {CACHE_SCHEMA}",
                        hint="upgrade exapt, or move the file away (it is only a cache)",
                    )
                sqlite.run_script(conn, _SCHEMA)
                conn.execute(f"PRAGMA user_version = {CACHE_SCHEMA}")
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(
                f"{self.path} is not an exapt evaluation cache: {exc}",
                hint="move the file away (it is only a cache)",
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get(self, key: str) -> tuple[TaskResult, str] | None:
        """The cached result of ``key`` and the origin that paid for it, or None."""
        rows = sqlite.query(
            self._conn, self._lock, "SELECT data, origin FROM results WHERE key = ?", (key,)
        )
        if not rows:
            return None
        return TaskResult.model_validate_json(rows[0][0]), str(rows[0][1])

    def put(self, key: str, result: TaskResult, *, model: str, seed: int, scorer: str,
            origin: str) -> None:  # fmt: skip
        """Store ``result`` under ``key`` (first write wins: a result is never replaced)."""
        if result.error is not None:
            return
        data = result.model_copy(update={"cached": False}).model_dump_json(by_alias=True)
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, result.variant_id, result.task_id, model, seed, scorer, origin,
                 time.time(), result.cost_usd, data),
            )  # fmt: skip

    def spend(self, origin: str) -> dict[str, Any]:
        """What the evaluations ``origin`` paid for cost: count, USD, tokens."""
        sql = "SELECT data FROM results WHERE origin = ?"
        rows = sqlite.query(self._conn, self._lock, sql, (origin,))
        results = [json.loads(r[0]) for r in rows]
        return {
            "evaluations": len(results),
            "cost_usd": sum(r.get("cost_usd", 0.0) for r in results),
            "tokens": sum(r.get("tokens", 0) for r in results),
            "wall_s": sum(r.get("wall_s", 0.0) for r in results),
        }

    def count(self) -> int:
        return int(sqlite.query(self._conn, self._lock, "SELECT COUNT(*) FROM results")[0][0])
