"""``Run``: what ``exapt run`` does — a ``RunConfig`` resolved into an engine ``Target``, its
files under ``<home>/runs/<run_id>/``, its row in the trajectory store, its summary.

``Run.prepare`` resolves everything (suite, split, model, agent specs, sandbox backend,
memory) and raises ``ConfigError`` for bad input *before anything is created*.
``Run.execute`` writes ``config.json``, evaluates through the ``Engine`` (every attempt
stored the moment it is scored; see ``exapt.engine.engine``), keeps the run's row live, and
writes ``summary.json`` atomically however the run ends (``done``, ``stopped``, ``failed``,
``interrupted``). ``Run.resume(run_id)`` reloads a run's config and runs only the (task,
trial) pairs not yet stored.

Example:
    run = Run.prepare(RunConfig(suite="jsonl:tasks.jsonl", model="local", limit=5))
    summary = run.execute()
    print(summary["pass_rate"])
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.engine.config import CONFIG_SCHEMA, DEFAULT_WORKERS, RunConfig, model_kind, new_run_id
from exapt.engine.engine import Engine, Evaluation
from exapt.engine.executor import LocalExecutor
from exapt.engine.resolve import (
    check_backend,
    open_run_memory,
    resolve_model_name,
    select_tasks,
    specs_for,
)
from exapt.engine.state import Progress, Target, TaskState
from exapt.errors import ConfigError
from exapt.memory import Memory
from exapt.memory.trajectories import TrajectoryStore, live_status
from exapt.paths import atomic_write, home, runs_dir
from exapt.records import Task
from exapt.tasks import Suite, load_suite, suite_sandbox_factory


@dataclass
class Run:
    """One run, prepared: everything resolved, nothing started (see the module docstring)."""

    run_id: str
    config: RunConfig
    suite: Suite
    tasks: list[Task]
    model: Model
    specs: dict[str, AgentSpec]  # task id -> spec (the default spec may differ per task)
    backend: str
    memory: Memory | None
    resumed: bool = False
    evaluation: Evaluation | None = field(default=None, init=False, repr=False)
    _summary: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    # --- preparation: resolve, validate, create nothing ------------------------------

    @classmethod
    def prepare(cls, config: RunConfig, *, run_id: str | None = None) -> Run:
        """Resolve suite, split, limit, model, agent, sandbox and memory. Raises
        ``ConfigError`` (unknown suite/split/model/backend, bad spec) and creates nothing."""
        suite = load_suite(config.suite)
        tasks = select_tasks(suite, config.suite, config.split, config.task, config.limit)
        model = resolve_model_name(config.model, config.api_base)
        specs = specs_for(config.agent, model, tasks)
        backend = check_backend(config.sandbox)
        # The agent's and the scorer's sandboxes get the suite's own limits and the host
        # paths its toolchains need bound read-only; skills are judged in the same kind.
        memory = open_run_memory(
            config.memory, config.memory_url, model, suite_sandbox_factory(suite, backend)
        )
        resolved = config.model_copy(
            update={
                "sandbox": backend,
                "workers": config.workers or DEFAULT_WORKERS[model_kind(config.model)],
                "memory": memory is not None,
            }
        )
        return cls(
            run_id=run_id or new_run_id(),
            config=resolved,
            suite=suite,
            tasks=tasks,
            model=model,
            specs=specs,
            backend=backend,
            memory=memory,
            resumed=run_id is not None,
        )

    @classmethod
    def resume(cls, run_id: str, **overrides: Any) -> Run:
        """The run ``run_id`` from its saved config; ``overrides`` (workers, budgets) win.
        ``ConfigError`` if there is no such run, or it is still running."""
        path = home() / "runs" / run_id / "config.json"
        if not path.is_file():
            raise ConfigError(
                f"no run {run_id!r} to resume ({path} does not exist)",
                hint="see the runs with `exapt runs list`",
            )
        with TrajectoryStore() as store:
            record = store.get_run(run_id)
        if record is not None and live_status(record) == "running":
            pid = (record.summary or {}).get("pid")
            raise ConfigError(
                f"run {run_id!r} is still running (pid {pid})",
                hint="stop it first (Ctrl-C or kill PID), then resume; if that pid is another "
                "program now, wait for it to end",
            )
        try:
            saved = json.loads(path.read_text())
            for key in ("run_id", "created", "resumed"):
                saved.pop(key, None)
            config = RunConfig(**{**saved, **{k: v for k, v in overrides.items() if v is not None}})
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"{path}: not a valid run config: {exc}") from exc
        return cls.prepare(config, run_id=run_id)

    # --- what the CLI shows -------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return runs_dir() / self.run_id

    @property
    def workers(self) -> int:
        return self.config.workers or 1

    @property
    def states(self) -> dict[str, TaskState]:
        return self.evaluation.states if self.evaluation else {}

    @property
    def status(self) -> str:
        return self.evaluation.status if self.evaluation else "running"

    @property
    def abandoned(self) -> bool:
        return bool(self.evaluation and self.evaluation.abandoned)

    # --- execution --------------------------------------------------------------------

    def target(self) -> Target:
        return Target(
            model=self.model,
            suite=self.suite,
            sandbox=suite_sandbox_factory(self.suite, self.backend),
            specs=self.specs,
            memory=self.memory,
        )

    def execute(self, on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
        """Run every pending attempt; return the summary (also in ``summary.json``).

        Never raises for what an attempt does; a ``ModelError`` or other failure ends the run
        with ``status: failed``, Ctrl-C with ``interrupted``; both keep what was stored.
        """
        with TrajectoryStore() as store:
            errors = self.run_dir / "errors.log"
            engine = Engine(store, LocalExecutor(self.workers), errors_log=errors)
            elapsed_before = self._begin(store)
            evaluation = self.evaluation = engine.prepare(
                self.target(),
                self.tasks,
                run_id=self.run_id,
                trials=self.config.trials,
                budget=self.config.budget(),
                elapsed_before=elapsed_before,
            )
            store.finish_run(self.run_id, self.summary(), "running")  # pid: is it alive?

            def live(_attempt: object) -> None:  # the row follows the run: `runs show` is live
                store.finish_run(self.run_id, self.summary(), "running")

            def finish(ev: Evaluation) -> None:
                engine.reload(ev)  # the store is the truth, even for attempts cut short
                self._summary = self.summary()
                text = json.dumps(self._summary, indent=2) + "\n"
                atomic_write(self.run_dir / "summary.json", text)
                store.finish_run(self.run_id, self._summary, ev.status)

            engine.execute(evaluation, on_progress=on_progress, on_attempt=live, on_finish=finish)
        return self._summary

    def _begin(self, store: TrajectoryStore) -> float:
        """config.json first, then the run's row: a run is resumable from its first second.
        Returns the wall seconds of the run's earlier sessions."""
        config_path = self.run_dir / "config.json"
        record = self.config.model_dump(mode="json", by_alias=True)
        if not config_path.exists():
            saved = {"run_id": self.run_id, "created": time.time(), **record}
            atomic_write(config_path, json.dumps(saved, indent=2) + "\n")
        previous = store.get_run(self.run_id)
        store.create_run(self.run_id, {**record, "run_id": self.run_id})
        if previous is not None and previous.summary:
            return float(previous.summary.get("wall_s", 0.0))
        return 0.0

    def summary(self) -> dict[str, Any]:
        """The run's summary as it stands (see the README for the fields)."""
        c = self.config
        states = [self.states.get(t.id, TaskState()) for t in self.tasks]
        n_tasks = len(self.tasks)
        n_passed = sum(s.passed_trial is not None for s in states)
        _, cost, wall = self.evaluation.totals() if self.evaluation else (0, 0.0, 0.0)
        ev = self.evaluation
        summary: dict[str, Any] = {
            "schema": CONFIG_SCHEMA,
            "run_id": self.run_id,
            "status": self.status,
            "suite": self.suite.name,
            "split": c.split,
            "limit": c.limit,
            "task": c.task,
            "model": c.model,
            "agent": "+".join(sorted({spec.name for spec in self.specs.values()})),
            "variant_id": "+".join(sorted({spec.variant_id() for spec in self.specs.values()})),
            "sandbox": self.backend,
            "memory": self.memory is not None,
            "workers": self.workers,
            "trials": c.trials,
            "n_tasks": n_tasks,
            "n_attempted": sum(s.trials_done > 0 for s in states),
            "n_passed": n_passed,
            "pass_rate": n_passed / n_tasks if n_tasks else 0.0,
            "tokens_in": sum(s.tokens_in for s in states),
            "tokens_out": sum(s.tokens_out for s in states),
            "cost_usd": cost,
            "wall_s": round(wall, 3),
            "budget": {
                "max_cost_usd": c.max_cost_usd,
                "max_tokens": c.max_tokens,
                "max_wall_s": c.max_wall_s,
            },
            "stopped": "budget" if self.status == "stopped" else None,
            "stop_detail": ev.stop_detail if ev else None,
            "error": ev.error if ev else None,
            "learn_errors": sum(s.learn_errors for s in states),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        if c.trials > 1:
            summary["per_trial"] = [
                sum(s.passed_trial is not None and s.passed_trial <= k for s in states) / n_tasks
                for k in range(c.trials)
            ]
        return summary
