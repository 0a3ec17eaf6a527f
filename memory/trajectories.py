"""``TrajectoryStore``: every run, task attempt and step, in one SQLite file (WAL).

Tables (schema version in ``PRAGMA user_version``):

- ``runs``: one row per run — ``run_id``, ``created``, ``config`` (JSON), ``status``
  (``running`` | ``done`` | ``stopped`` | ``failed`` | ``interrupted``), ``summary`` (JSON).
- ``trajectories``: one row per (run_id, task_id, trial) — the columns a table needs
  (variant, model, passed, reward, tokens, cost, wall time) and the trajectory's JSON
  without its steps.
- ``steps``: one row per step of a trajectory, in order (kind, input, output, tokens,
  cost, timings), so ``exapt runs show --task`` reads one attempt without parsing a run.
  A model step's input is packed (``trajectory_pack``): its messages are references to
- ``blobs``: each distinct message (and tool list) of an attempt, stored once — so storage
  grows with what an attempt said, not with the square of its steps.

The schema (``trajectory_schema``) is versioned in ``PRAGMA user_version``; a schema-1 file
(no ``blobs``) is upgraded in place when opened, its steps read back as they were.

Contract: ``add`` writes a trajectory and its steps in one transaction and is idempotent
per (run_id, task_id, trial) — adding again replaces the earlier attempt, never duplicates
it. The store is safe to share between threads (one connection, one lock) and between
processes (SQLite WAL: readers never block the one writer). A file that is not an exapt
trajectory database, or one written by a newer exapt, raises ``ConfigError`` naming it.

Example:
    store = TrajectoryStore()  # <exapt home>/trajectories.sqlite
    store.create_run("20261122-013000-ab12", {"suite": "humaneval"})
    store.add(trajectory)
    store.done_keys("20261122-013000-ab12")  # {("HumanEval/0", 0)}
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from exapt import sqlite
from exapt.errors import ConfigError
from exapt.memory.trajectory_pack import Packer, unpack
from exapt.memory.trajectory_schema import ensure_schema
from exapt.records import Step, Trajectory

_TRAJ_COLUMNS = (
    "run_id, task_id, trial, variant_id, model, passed, reward, tokens_in, tokens_out, "
    "cost_usd, wall_s, stop_reason, error, created, data"
)


class RunRecord(BaseModel):
    """One row of ``runs``, with counts of its stored trajectories."""

    run_id: str
    created: float
    updated: float
    config: dict[str, Any] = Field(default_factory=dict)
    status: str = "running"
    summary: dict[str, Any] | None = None
    n_trajectories: int = 0
    n_passed: int = 0


class TrajectoryStore:
    """The SQLite store of runs and trajectories (see the module docstring for the contract)."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is None:
            from exapt.paths import trajectories_db

            path = trajectories_db()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # One connection shared under a lock: SQLite serialises writers anyway, and a lock is
        # simpler to reason about than per-thread connections that must all be closed.
        self._conn = sqlite.connect(self.path)
        try:
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(
                f"{self.path} is not an exapt trajectory database: {exc}",
                hint="point EXAPT_HOME at another folder, or move this file away",
            ) from exc

    def _init_schema(self) -> None:
        conn = self._conn
        sqlite.use_wal(conn)
        with self._transaction():  # two processes opening a new file create it once
            ensure_schema(conn, self.path)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; ROLLBACK on any error."""
        return sqlite.transaction(self._conn, self._lock)

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return sqlite.query(self._conn, self._lock, sql, params)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        return str(self._query("PRAGMA journal_mode")[0][0])

    # --- runs -------------------------------------------------------------------------

    def create_run(self, run_id: str, config: dict[str, Any]) -> None:
        """Record a new run as ``running``. Creating an existing run (a resume) keeps its
        ``created`` time and config and sets it ``running`` again."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, created, updated, config, status) "
                "VALUES (?, ?, ?, ?, 'running') "
                "ON CONFLICT (run_id) DO UPDATE SET status = 'running', updated = excluded.updated",
                (run_id, now, now, json.dumps(config, default=str)),
            )

    def finish_run(self, run_id: str, summary: dict[str, Any], status: str) -> None:
        """Store the run's summary and final status; ``KeyError`` for an unknown run."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET summary = ?, status = ?, updated = ? WHERE run_id = ?",
                (json.dumps(summary, default=str), status, time.time(), run_id),
            )
            if cur.rowcount == 0:
                raise KeyError(run_id)

    def list_runs(self) -> list[RunRecord]:
        """All runs, newest first."""
        rows = self._query(
            "SELECT r.run_id, r.created, r.updated, r.config, r.status, r.summary, "
            "COUNT(t.task_id), COALESCE(SUM(t.passed), 0) "
            "FROM runs r LEFT JOIN trajectories t ON t.run_id = r.run_id "
            "GROUP BY r.run_id ORDER BY r.created DESC, r.run_id DESC"
        )
        return [_run_record(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or None if the store has no such run."""
        rows = self._query(
            "SELECT r.run_id, r.created, r.updated, r.config, r.status, r.summary, "
            "COUNT(t.task_id), COALESCE(SUM(t.passed), 0) "
            "FROM runs r LEFT JOIN trajectories t ON t.run_id = r.run_id "
            "WHERE r.run_id = ? GROUP BY r.run_id",
            (run_id,),
        )
        return _run_record(rows[0]) if rows else None

    # --- trajectories -----------------------------------------------------------------

    def add(self, trajectory: Trajectory) -> None:
        """Store one scored attempt and its steps in one transaction (idempotent per
        (run_id, task_id, trial): a second add replaces the first). A run the store has not
        seen is created with an empty config."""
        t = trajectory
        now = time.time()
        data = t.model_dump_json(by_alias=True, exclude={"steps"})
        packer = Packer()
        steps = [
            (
                t.run_id,
                t.task_id,
                t.trial,
                i,
                s.kind,
                json.dumps(packer.pack(s.input), default=str),
                json.dumps(s.output, default=str),
                s.tokens_in,
                s.tokens_out,
                s.cost_usd,
                s.duration_s,
                s.started_at,
            )
            for i, s in enumerate(t.steps)
        ]
        key = (t.run_id, t.task_id, t.trial)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO runs (run_id, created, updated, config, status) "
                "VALUES (?, ?, ?, '{}', 'running')",
                (t.run_id, now, now),
            )
            conn.execute("DELETE FROM steps WHERE run_id = ? AND task_id = ? AND trial = ?", key)
            conn.execute("DELETE FROM blobs WHERE run_id = ? AND task_id = ? AND trial = ?", key)
            conn.execute(
                f"INSERT OR REPLACE INTO trajectories ({_TRAJ_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *key,
                    t.variant_id,
                    t.model,
                    int(t.result.passed),
                    t.result.reward,
                    t.tokens_in,
                    t.tokens_out,
                    t.cost_usd,
                    t.wall_s,
                    t.result.stop_reason,
                    t.result.error,
                    now,
                    data,
                ),
            )
            conn.executemany("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps)
            conn.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?, ?, ?)",
                [(*key, h, text) for h, text in packer.blobs.items()],
            )

    def trajectories(
        self, run_id: str | None = None, task_id: str | None = None, *, with_steps: bool = True
    ) -> list[Trajectory]:
        """Stored trajectories, ordered by (run, task, trial); filter by run and/or task.
        ``with_steps=False`` skips loading the steps (fast summaries)."""
        where, params = _where(run_id=run_id, task_id=task_id)
        rows = self._query(
            f"SELECT run_id, task_id, trial, data FROM trajectories{where} "
            "ORDER BY run_id, task_id, trial",
            params,
        )
        out = []
        for run, task, trial, data in rows:
            t = Trajectory.model_validate_json(data)
            if with_steps:
                t.steps = self._steps(run, task, trial)
            out.append(t)
        return out

    def _steps(self, run_id: str, task_id: str, trial: int) -> list[Step]:
        key = (run_id, task_id, trial)
        blobs = dict(
            self._query(
                "SELECT hash, data FROM blobs WHERE run_id = ? AND task_id = ? AND trial = ?", key
            )
        )
        rows = self._query(
            "SELECT kind, input, output, tokens_in, tokens_out, cost_usd, duration_s, started_at "
            "FROM steps WHERE run_id = ? AND task_id = ? AND trial = ? ORDER BY idx",
            (run_id, task_id, trial),
        )
        return [
            Step(
                kind=kind,
                input=unpack(json.loads(inp), blobs) if inp is not None else None,
                output=json.loads(outp) if outp is not None else None,
                tokens_in=tin,
                tokens_out=tout,
                cost_usd=cost,
                duration_s=dur,
                started_at=start,
            )
            for kind, inp, outp, tin, tout, cost, dur, start in rows
        ]

    def update_metadata(self, run_id: str, task_id: str, trial: int, **values: Any) -> None:
        """Merge ``values`` into a stored attempt's ``metadata`` (e.g. ``learn_error``);
        ``KeyError`` when no such attempt is stored."""
        key = (run_id, task_id, trial)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT data FROM trajectories WHERE run_id = ? AND task_id = ? AND trial = ?",
                key,
            ).fetchone()
            if row is None:
                raise KeyError(key)
            data = json.loads(row[0])
            data["metadata"] = {**data.get("metadata", {}), **values}
            conn.execute(
                "UPDATE trajectories SET data = ? WHERE run_id = ? AND task_id = ? AND trial = ?",
                (json.dumps(data, default=str), *key),
            )

    def find_attempt(
        self,
        variant_id: str,
        task_id: str,
        model: str,
        trial: int,
        *,
        exclude_run: str | None = None,
    ) -> Trajectory | None:
        """The latest stored attempt (with its steps) of this variant, task, model and
        trial, from any run but ``exclude_run``, that is not itself a cached copy."""
        rows = self._query(
            "SELECT run_id, data FROM trajectories WHERE variant_id = ? AND task_id = ? "
            "AND model = ? AND trial = ? AND run_id != ? ORDER BY created DESC",
            (variant_id, task_id, model, trial, exclude_run or ""),
        )
        for run_id, data in rows:
            t = Trajectory.model_validate_json(data)
            if "cached_from" not in t.metadata:
                t.steps = self._steps(run_id, task_id, trial)
                return t
        return None

    def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """The (task_id, trial) pairs of ``run_id`` already stored: what ``--resume`` skips."""
        rows = self._query("SELECT task_id, trial FROM trajectories WHERE run_id = ?", (run_id,))
        return {(task, int(trial)) for task, trial in rows}


def _where(**filters: Any) -> tuple[str, tuple[Any, ...]]:
    pairs = [(k, v) for k, v in filters.items() if v is not None]
    if not pairs:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k, _ in pairs), tuple(v for _, v in pairs)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    run_id, created, updated, config, status, summary, n, n_passed = row
    return RunRecord(
        run_id=run_id,
        created=created,
        updated=updated,
        config=json.loads(config) if config else {},
        status=status,
        summary=json.loads(summary) if summary else None,
        n_trajectories=n,
        n_passed=n_passed,
    )


def live_status(record: RunRecord) -> str:
    """The stored status, except that a ``running`` run whose process is gone (on this
    host; the engine writes ``pid`` and ``host`` into the summary) shows as ``killed`` —
    resumable with ``exapt run --resume``."""
    summary = record.summary or {}
    if record.status != "running" or summary.get("host") != socket.gethostname():
        return str(record.status)
    pid = summary.get("pid")
    if not isinstance(pid, int):
        return str(record.status)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "killed"
    except PermissionError:  # alive, someone else's
        pass
    return str(record.status)
