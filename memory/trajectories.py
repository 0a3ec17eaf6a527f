"""``TrajectoryStore``: every run, task attempt and step, in one SQLite file (WAL).

Tables (schema version in ``PRAGMA user_version``):

- ``runs``: one row per run — ``run_id``, ``created``, ``config`` (JSON), ``status``
  (``running`` | ``done`` | ``stopped`` | ``failed`` | ``interrupted``), ``summary`` (JSON).
- ``trajectories``: one row per (run_id, task_id, trial) — the columns a table needs
  (variant, model, passed, reward, tokens, cost, wall time) and the trajectory's JSON
  without its steps.
- ``steps``: one row per step of a trajectory, in order (kind, input, output, tokens,
  cost, timings), so ``exapt runs show --task`` reads one attempt without parsing a run.

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
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from exapt.errors import ConfigError
from exapt.records import Step, Trajectory

STORE_SCHEMA = 1

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

_OUR_NAMES = {"runs", "trajectories", "steps", "trajectories_by_task"}

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
        self._conn = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
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
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")  # must run outside a transaction
        conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL
        with self._transaction():  # two processes opening a new file create it once
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > STORE_SCHEMA:
                raise ConfigError(
                    f"{self.path} has trajectory schema {version}; this exapt reads up to "
                    f"{STORE_SCHEMA}",
                    hint="upgrade exapt, or use another EXAPT_HOME",
                )
            if version == STORE_SCHEMA:
                return
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            foreign = {n for n in names if not n.startswith("sqlite_")} - _OUR_NAMES
            if foreign:
                raise ConfigError(
                    f"{self.path} is a SQLite file of something else (tables: "
                    f"{', '.join(sorted(foreign))})",
                    hint="point EXAPT_HOME at another folder, or move this file away",
                )
            # executescript() would COMMIT our transaction first: run statement by statement.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {STORE_SCHEMA}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; ROLLBACK on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

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
        steps = [
            (
                t.run_id,
                t.task_id,
                t.trial,
                i,
                s.kind,
                json.dumps(s.input, default=str),
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
        rows = self._query(
            "SELECT kind, input, output, tokens_in, tokens_out, cost_usd, duration_s, started_at "
            "FROM steps WHERE run_id = ? AND task_id = ? AND trial = ? ORDER BY idx",
            (run_id, task_id, trial),
        )
        return [
            Step(
                kind=kind,
                input=json.loads(inp) if inp is not None else None,
                output=json.loads(outp) if outp is not None else None,
                tokens_in=tin,
                tokens_out=tout,
                cost_usd=cost,
                duration_s=dur,
                started_at=start,
            )
            for kind, inp, outp, tin, tout, cost, dur, start in rows
        ]

    def done_keys(self, run_id: str) -> set[tuple[str, int]]:
        """The (task_id, trial) pairs of ``run_id`` already stored: what ``--resume`` skips."""
        rows = self._query("SELECT task_id, trial FROM trajectories WHERE run_id = ?", (run_id,))
        return {(task, int(trial)) for task, trial in rows}

    # --- export -----------------------------------------------------------------------

    def export_jsonl(
        self, path: Path | str, run_id: str | None = None, *, passed_only: bool = True
    ) -> int:
        """Write fine-tuning records, one JSON object per line, atomically; return how many.

        A trajectory with chat model calls becomes one OpenAI chat record
        ``{"messages": [...], "tools": [...]}`` (assistant ``tool_calls`` and ``tool``
        messages rebuilt from the steps); one with only completion calls becomes
        ``{"prompt", "completion"}`` from its last completion. Trajectories without model
        calls are skipped. ``passed_only`` keeps only attempts the scorer passed.
        """
        from exapt.paths import atomic_write

        lines = []
        for t in self.trajectories(run_id):
            if passed_only and not t.result.passed:
                continue
            record = to_finetune_record(t.steps)
            if record is not None:
                lines.append(json.dumps(record, ensure_ascii=False))
        atomic_write(Path(path), "".join(line + "\n" for line in lines))
        return len(lines)


def to_finetune_record(steps: list[Step]) -> dict[str, Any] | None:
    """One fine-tuning record from a trajectory's steps (see ``export_jsonl``), or None."""
    chat = [s for s in steps if s.kind == "model" and _is_chat(s.input)]
    if chat:
        messages: list[dict[str, Any]] = []
        tools: list[dict[str, Any]] = []
        for step in steps:
            if step.kind == "model" and _is_chat(step.input):
                messages = _merge_sent(messages, step.input["messages"])
                tools = step.input.get("tools") or tools
                messages.append(_assistant_message(step.output))
            elif step.kind == "tool" and isinstance(step.input, dict):
                call_id = step.input.get("id")
                if call_id and not _has_tool_result(messages, call_id):
                    messages.append(
                        {"role": "tool", "tool_call_id": call_id, "content": _text(step.output)}
                    )
        while messages and messages[-1].get("role") != "assistant":
            messages.pop()  # e.g. the observation of `submit`: nothing after it to learn
        record: dict[str, Any] = {"messages": messages}
        if tools:
            record["tools"] = [_tool_schema(tool) for tool in tools]
        return record
    completions = [
        s for s in steps if s.kind == "model" and isinstance(s.input, dict) and "prompt" in s.input
    ]
    if completions:
        last = completions[-1]
        return {"prompt": str(last.input["prompt"]), "completion": _text(last.output)}
    return None


def _is_chat(step_input: Any) -> bool:
    return isinstance(step_input, dict) and isinstance(step_input.get("messages"), list)


def _merge_sent(history: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation after a model call that was sent ``sent``.

    Agents send either the whole history each call (the usual ReAct loop) or only what is
    new since their last call; a ``sent`` that starts with the history's roles (and tool-call
    ids) is the whole history and replaces it, otherwise it is appended — minus tool results
    the history already holds from tool steps.
    """
    sent = [dict(m) for m in sent]
    if _same_shape(sent[: len(history)], history):
        return sent
    merged = list(history)
    for message in sent:
        call_id = message.get("tool_call_id")
        if message.get("role") == "tool" and call_id and _has_tool_result(merged, call_id):
            continue
        merged.append(message)
    return merged


def _same_shape(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    if len(a) != len(b):
        return False
    return all(
        x.get("role") == y.get("role") and x.get("tool_call_id") == y.get("tool_call_id")
        for x, y in zip(a, b, strict=True)
    )


def _has_tool_result(messages: list[dict[str, Any]], call_id: str) -> bool:
    return any(m.get("role") == "tool" and m.get("tool_call_id") == call_id for m in messages)


def _assistant_message(output: Any) -> dict[str, Any]:
    """A model step's output as an OpenAI assistant message, tool-call arguments as JSON text
    (the fine-tuning format requires strings)."""
    if not isinstance(output, dict):
        return {"role": "assistant", "content": _text(output)}
    message: dict[str, Any] = {"role": "assistant", "content": output.get("content") or ""}
    if "text" in output and "content" not in output:  # a dumped ModelReply
        message["content"] = output.get("text") or ""
    calls = []
    for call in output.get("tool_calls") or []:
        fn = call.get("function") or {"name": call.get("name"), "arguments": call.get("arguments")}
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            {
                "id": call.get("id", ""),
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": arguments},
            }
        )
    if calls:
        message["tool_calls"] = calls
    return message


def _tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``{"type": "function", "function": {...}}`` tool, whichever way it was stored."""
    if tool.get("type") == "function" and "function" in tool:
        return tool
    return {"type": "function", "function": tool}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("content", "text", "output", "stdout"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return json.dumps(value, default=str)


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
