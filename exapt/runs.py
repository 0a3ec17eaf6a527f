"""A run: one agent on a suite's tasks, trial after trial, every attempt stored as it finishes.

``Run.prepare`` resolves everything a run needs (suite, split, model, agent spec, sandbox
backend, memory) and raises ``ConfigError`` for bad input *before anything is created*.
``Run.execute`` then writes ``<home>/runs/<run_id>/config.json``, runs the attempts on a
thread pool, stores each scored trajectory in the ``TrajectoryStore`` the moment it is
scored, and writes ``summary.json`` (atomically) at the end, however the run ends:

- ``done``: every task passed or used all its trials;
- ``stopped``: a run budget (``max_cost_usd``, ``max_tokens``, ``max_wall_s``) was reached;
  no new attempt was started, running ones finished;
- ``failed``: a ``ModelError`` (server down, provider error, missing key) or another
  infrastructure error; running attempts finished and were kept;
- ``interrupted``: Ctrl-C or SIGTERM; the summary is written at once and attempts still
  running are dropped, not stored (a terminal's Ctrl-C reaches their sandboxes too, so their
  results are suspect): ``--resume`` re-runs them. A second Ctrl-C stops waiting for them.

Trials (the Reflexion loop): trial ``k`` re-runs only the tasks that failed every earlier
trial, as soon as their previous trial is scored; with memory on, the runner recalls the
reflections the failed attempts left. ``per_trial[k]`` is the cumulative pass rate after
trials ``0..k``.

``Run.resume(run_id)`` reloads a run's config and runs only the (task, trial) pairs not yet
in the store, so a killed run loses no finished attempt.

Example:
    run = Run.prepare(RunConfig(suite="jsonl:tasks.jsonl", model="local", limit=5))
    summary = run.execute()
    print(summary["pass_rate"])
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exapt.errors import ConfigError, ExaptError

if TYPE_CHECKING:
    from exapt.memory.trajectories import RunRecord

CONFIG_SCHEMA = 1
#: Default thread-pool size: the local server batches concurrent requests and 2–4 cores give
#: most of the batching gain at 4; hosted providers take 8 parallel requests easily; a
#: scripted model answers in order, so one worker keeps its script deterministic.
DEFAULT_WORKERS = {"local": 4, "scripted": 1, "remote": 8}
STATUSES = ("running", "done", "stopped", "failed", "interrupted")


class RunConfig(BaseModel):
    """What the user asked for; saved as ``config.json`` with every default resolved."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(CONFIG_SCHEMA, alias="schema")
    suite: str
    split: str = "all"
    limit: int | None = Field(None, gt=0, description="first N tasks after the split")
    task: list[str] | None = Field(None, description="only these task ids (after the split)")
    model: str = "local"
    api_base: str | None = None
    agent: str | None = Field(None, description="spec YAML path or built-in name; None = default")
    sandbox: str | None = Field(None, description="backend; None = the best available")
    workers: int | None = Field(None, gt=0)
    trials: int = Field(1, ge=1)
    memory: bool | None = Field(None, description="None = on when long-term memory is installed")
    memory_url: str | None = Field(None, description="Chroma server URL; None = the home folder")
    max_cost_usd: float | None = Field(None, gt=0)
    max_tokens: int | None = Field(None, gt=0)
    max_wall_s: float | None = Field(None, gt=0)


def make_config(**values: Any) -> RunConfig:
    """A ``RunConfig`` from CLI values; an out-of-range value is a ``ConfigError`` naming it."""
    try:
        return RunConfig(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"bad run option: {problems}") from exc


def new_run_id() -> str:
    """``YYYYmmdd-HHMMSS-xxxx`` (UTC, 4 random hex digits): sortable, unique enough."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


@dataclass
class TaskState:
    """How one task stands: trials scored so far, and the first trial that passed."""

    trials_done: int = 0
    passed_trial: int | None = None
    reward: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    stop_reason: str = ""


@dataclass
class RunProgress:
    """A snapshot for progress displays, passed to ``execute``'s callback."""

    run_id: str
    n_tasks: int
    done: int
    passed: int
    tokens: int
    cost_usd: float
    elapsed_s: float
    running: int
    note: str = ""

    @property
    def pass_rate(self) -> float:
        return self.passed / self.done if self.done else 0.0


@dataclass
class Run:
    """One run, prepared: everything resolved, nothing started (see the module docstring)."""

    run_id: str
    config: RunConfig
    suite: Any
    tasks: list[Any]
    model: Any
    specs: dict[str, Any]  # task id -> AgentSpec (the default spec may differ per task)
    backend: str
    memory: Any
    resumed: bool = False
    states: dict[str, TaskState] = field(default_factory=dict)
    status: str = "running"
    stop_detail: str | None = None
    error: str | None = None
    abandoned: bool = False
    _store: Any = field(default=None, init=False, repr=False)
    _started: float = field(default=0.0, init=False)
    _wall_before: float = field(default=0.0, init=False)  # earlier sessions of a resumed run

    # --- preparation: resolve, validate, create nothing ------------------------------

    @classmethod
    def prepare(cls, config: RunConfig, *, run_id: str | None = None) -> Run:
        """Resolve suite, split, limit, model, agent, sandbox and memory. Raises
        ``ConfigError`` (unknown suite/split/model/backend, bad spec) and creates nothing."""
        from exapt.tasks import load_suite, split_tasks

        suite = load_suite(config.suite)
        tasks = split_tasks(suite.tasks(), config.split)
        if config.task:
            tasks = _select(tasks, config.task, config.suite, config.split)
        if config.limit is not None:
            tasks = tasks[: config.limit]
        if not tasks:
            raise ConfigError(
                f"suite {config.suite!r} has no tasks in split {config.split!r}",
                hint="try --split all",
            )
        model = resolve_model_name(config.model, config.api_base)
        specs = _specs_for(config.agent, model, tasks)
        backend = _check_backend(config.sandbox)
        memory = _open_memory(config.memory, config.memory_url, model)
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
        ``ConfigError`` if there is no such run."""
        from exapt.paths import home

        path = home() / "runs" / run_id / "config.json"
        if not path.is_file():
            raise ConfigError(
                f"no run {run_id!r} to resume ({path} does not exist)",
                hint="see the runs with `exapt runs list`",
            )
        from exapt.memory.trajectories import TrajectoryStore

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
            saved.pop("run_id", None)
            saved.pop("created", None)
            saved.pop("resumed", None)
            config = RunConfig(**{**saved, **{k: v for k, v in overrides.items() if v is not None}})
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"{path}: not a valid run config: {exc}") from exc
        return cls.prepare(config, run_id=run_id)

    # --- execution --------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        from exapt.paths import runs_dir

        return runs_dir() / self.run_id

    @property
    def workers(self) -> int:
        return self.config.workers or 1

    def execute(self, on_progress: Callable[[RunProgress], None] | None = None) -> dict[str, Any]:
        """Run every pending attempt; return the summary (also in ``summary.json``).

        Never raises for what an attempt does; a ``ModelError`` or other failure ends the run
        with ``status: failed``, Ctrl-C with ``interrupted``; both keep what was stored.
        """
        from exapt.memory.trajectories import TrajectoryStore

        self._store = TrajectoryStore()
        self._begin()
        work = self._pending()
        self._started = time.monotonic()
        self._store.finish_run(self.run_id, self.summary(), "running")  # pid: is it alive?
        notify = on_progress or (lambda _p: None)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix=f"run-{self.run_id}")
        running: dict[Future[Any], tuple[Any, int]] = {}
        try:
            self._loop(pool, work, running, notify)
        except KeyboardInterrupt:
            self._stop("interrupted", "interrupted by Ctrl-C or SIGTERM")
        summary = self._finish()  # final now: attempts still running are dropped when interrupted
        if running:
            notify(
                self._progress(
                    len(running),
                    "waiting for the running attempts to stop (their results are dropped; "
                    "resume re-runs them); Ctrl-C again to leave at once",
                )
            )
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:  # the second Ctrl-C: leave the attempts' threads behind
            self.abandoned = True
        return summary

    def _loop(
        self,
        pool: ThreadPoolExecutor,
        work: deque[tuple[Any, int]],
        running: dict[Future[Any], tuple[Any, int]],
        notify: Callable[[RunProgress], None],
    ) -> None:
        """Keep ``workers`` attempts running until the work is done or the run stops."""
        while running or (work and self.status == "running"):
            while work and self.status == "running" and len(running) < self.workers:
                task, trial = work.popleft()
                budget = self._attempt_budget()
                running[pool.submit(self._attempt, task, trial, budget)] = (task, trial)
            finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                task, trial = running.pop(future)
                try:
                    trajectory = future.result()
                except ExaptError as exc:  # ModelError, SandboxError...: fatal for the run
                    self._log_error(task.id, trial, exc)
                    self._stop("failed", f"{type(exc).__name__}: {exc}")
                    continue
                except Exception as exc:  # a bug in an agent or a scorer: stop, keep the rest
                    self._log_error(task.id, trial, exc)
                    self._stop("failed", f"{type(exc).__name__} on task {task.id}: {exc}")
                    continue
                if trajectory is None:  # interrupted: not stored, resume re-runs it
                    continue
                next_trial = self._record(task, trajectory)
                if next_trial is not None:  # failed: the next trial, with its reflections
                    work.append((task, next_trial))
            if finished:  # the row's summary follows the run, so `runs show` is live
                self._store.finish_run(self.run_id, self.summary(), "running")
            self._check_budget()
            notify(self._progress(len(running)))

    def _attempt(self, task: Any, trial: int, budget: Any) -> Any:
        """One attempt, in a worker thread; stored before it returns (nothing lost on a kill).
        Returns None, storing nothing, when the run was interrupted meanwhile: a terminal's
        Ctrl-C also reaches the sandboxes and a local model server, so such a result is not
        trusted; ``--resume`` runs the attempt again."""
        from exapt.agents import run_task

        attempt = run_task(
            task,
            spec=self.specs[task.id],
            model=self.model,
            sandbox=self._sandbox_factory(),
            scorer=self.suite.scorer(),
            run_id=self.run_id,
            trial=trial,
            memory=self.memory,
            budget=budget,
        )
        if self.status == "interrupted":
            return None
        trajectory = attempt.trajectory
        trajectory.run_id, trajectory.trial = self.run_id, trial
        self._store.add(trajectory)
        return trajectory

    def _log_error(self, task_id: str, trial: int, exc: BaseException) -> None:
        """Append the traceback to ``<run dir>/errors.log``: the summary keeps one line."""
        import traceback

        text = "".join(traceback.format_exception(exc))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with (self.run_dir / "errors.log").open("a", encoding="utf-8") as log:
            log.write(f"--- {stamp} task {task_id} trial {trial}\n{text}\n")

    def _record(self, task: Any, trajectory: Any) -> int | None:
        """Account a stored attempt; return the next trial to run, or None if the task is done."""
        state = self.states.setdefault(task.id, TaskState())
        _account(state, trajectory)
        if state.passed_trial is None and state.trials_done < self.config.trials:
            return state.trials_done
        return None

    # --- budgets and stopping ---------------------------------------------------------

    def totals(self) -> tuple[int, float, float]:
        """(tokens in + out, cost in USD, wall seconds) of the whole run so far."""
        tokens = sum(s.tokens_in + s.tokens_out for s in self.states.values())
        cost = sum(s.cost_usd for s in self.states.values())
        return tokens, cost, self._wall_before + (time.monotonic() - self._started)

    def _check_budget(self) -> None:
        c = self.config
        tokens, cost, wall = self.totals()
        hits = [
            (c.max_cost_usd, cost, "max_cost_usd", f"${cost:.4f}"),
            (c.max_tokens, tokens, "max_tokens", f"{tokens} tokens"),
            (c.max_wall_s, wall, "max_wall_s", f"{wall:.0f} s"),
        ]
        for limit, used, name, shown in hits:
            if limit is not None and used >= limit:
                self._stop("stopped", f"budget: {name}={limit} reached ({shown} used)")
                return

    def _attempt_budget(self) -> Any:
        """The run's remaining budget, as a cap for one attempt (the spec's limits still apply)."""
        from exapt.agents.budget import Budget

        c = self.config
        tokens, cost, wall = self.totals()
        return Budget(
            max_tokens=max(1, c.max_tokens - tokens) if c.max_tokens else None,
            max_cost_usd=max(1e-9, c.max_cost_usd - cost) if c.max_cost_usd else None,
            max_wall_s=max(1.0, c.max_wall_s - wall) if c.max_wall_s else None,
        )

    def _stop(self, status: str, detail: str) -> None:
        """The first reason to stop wins; later ones (e.g. more ModelErrors) are dropped."""
        if self.status != "running":
            return
        self.status = status
        if status == "failed":
            self.error = detail
        else:
            self.stop_detail = detail

    # --- files and the store -----------------------------------------------------------

    def _begin(self) -> None:
        """config.json first, then the run's row: a run is resumable from its first second."""
        from exapt.paths import atomic_write

        config_path = self.run_dir / "config.json"
        if not config_path.exists():
            saved = {
                "run_id": self.run_id,
                "created": time.time(),
                **self.config.model_dump(mode="json", by_alias=True),
            }
            atomic_write(config_path, json.dumps(saved, indent=2) + "\n")
        record = self.config.model_dump(mode="json", by_alias=True)
        previous = self._store.get_run(self.run_id)
        if previous is not None and previous.summary:
            self._wall_before = float(previous.summary.get("wall_s", 0.0))
        self._store.create_run(self.run_id, {**record, "run_id": self.run_id})

    def _load_states(self) -> None:
        """Rebuild every task's state from the attempts the store holds for this run."""
        self.states = {task.id: TaskState() for task in self.tasks}
        for t in self._store.trajectories(self.run_id, with_steps=False):
            if t.task_id in self.states:
                _account(self.states[t.task_id], t)

    def _pending(self) -> deque[tuple[Any, int]]:
        """The (task, trial) pairs still to run, from what the store already holds."""
        self._load_states()
        work: deque[tuple[Any, int]] = deque()
        for task in self.tasks:
            state = self.states[task.id]
            if state.passed_trial is None and state.trials_done < self.config.trials:
                work.append((task, state.trials_done))
        return work

    def _progress(self, running: int, note: str = "") -> RunProgress:
        tokens, cost, wall = self.totals()
        finished = [s for s in self.states.values() if _finished(s, self.config.trials)]
        return RunProgress(
            run_id=self.run_id,
            n_tasks=len(self.tasks),
            done=len(finished),
            passed=sum(s.passed_trial is not None for s in finished),
            tokens=tokens,
            cost_usd=cost,
            elapsed_s=wall,
            running=running,
            note=note,
        )

    def summary(self) -> dict[str, Any]:
        """The run's summary as it stands (see the README for the fields)."""
        c = self.config
        states = [self.states.get(t.id, TaskState()) for t in self.tasks]
        n_tasks = len(self.tasks)
        n_passed = sum(s.passed_trial is not None for s in states)
        tokens_in = sum(s.tokens_in for s in states)
        tokens_out = sum(s.tokens_out for s in states)
        _, cost, wall = self.totals()
        names = sorted({spec.name for spec in self.specs.values()})
        variants = sorted({spec.variant_id() for spec in self.specs.values()})
        summary: dict[str, Any] = {
            "schema": CONFIG_SCHEMA,
            "run_id": self.run_id,
            "status": self.status,
            "suite": self.suite.name,
            "split": c.split,
            "limit": c.limit,
            "task": c.task,
            "model": c.model,
            "agent": "+".join(names),
            "variant_id": "+".join(variants),
            "sandbox": self.backend,
            "memory": self.memory is not None,
            "workers": self.workers,
            "trials": c.trials,
            "n_tasks": n_tasks,
            "n_attempted": sum(s.trials_done > 0 for s in states),
            "n_passed": n_passed,
            "pass_rate": n_passed / n_tasks if n_tasks else 0.0,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost_usd": cost,
            "wall_s": round(wall, 3),
            "budget": {
                "max_cost_usd": c.max_cost_usd,
                "max_tokens": c.max_tokens,
                "max_wall_s": c.max_wall_s,
            },
            "stopped": "budget" if self.status == "stopped" else None,
            "stop_detail": self.stop_detail,
            "error": self.error,
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

    def _finish(self) -> dict[str, Any]:
        """Write summary.json atomically and close the run's row with its final status."""
        from exapt.paths import atomic_write

        if self.status == "running":
            self.status = "done"
        self._load_states()  # the store is the truth, even for attempts a Ctrl-C cut short
        summary = self.summary()
        atomic_write(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        self._store.finish_run(self.run_id, summary, self.status)
        return summary

    def _sandbox_factory(self) -> Callable[..., Any]:
        """Opens the agent's and the scorer's sandboxes with the suite's own limits and the
        host paths its toolchains need bound read-only (e.g. Java's thread-heavy tests need
        more processes; rustup lives outside /usr)."""
        from exapt.tasks import suite_sandbox_factory

        return suite_sandbox_factory(self.suite, self.backend)


def _select(tasks: list[Any], ids: list[str], suite: str, split: str) -> list[Any]:
    """The tasks named by ``ids``, in suite order; an unknown id is a ``ConfigError``."""
    known = {t.id for t in tasks}
    unknown = [i for i in ids if i not in known]
    if unknown:
        sample = ", ".join(sorted(known)[:5])
        raise ConfigError(
            f"no task {', '.join(map(repr, unknown))} in suite {suite!r}, split {split!r}",
            hint=f"task ids look like: {sample} ... (see --split all)",
        )
    wanted = set(ids)
    return [t for t in tasks if t.id in wanted]


def live_status(record: RunRecord) -> str:
    """The stored status, except that a ``running`` run whose process is gone (on this
    host) shows as ``killed`` — resumable with ``exapt run --resume``."""
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


def _account(state: TaskState, trajectory: Any) -> None:
    """Add one scored attempt to its task's state."""
    state.trials_done = max(state.trials_done, trajectory.trial + 1)
    if trajectory.result.passed and (
        state.passed_trial is None or trajectory.trial < state.passed_trial
    ):
        state.passed_trial = trajectory.trial
    state.reward = max(state.reward, trajectory.result.reward)
    state.tokens_in += trajectory.tokens_in
    state.tokens_out += trajectory.tokens_out
    state.cost_usd += trajectory.cost_usd
    state.wall_s += trajectory.wall_s
    state.stop_reason = trajectory.result.stop_reason


def _finished(state: TaskState, trials: int) -> bool:
    return state.passed_trial is not None or state.trials_done >= trials


# --- resolution helpers (each raises ConfigError naming the bad value) -------------------


def model_kind(name: str) -> str:
    """``local``, ``scripted`` or ``remote``: what decides the default number of workers."""
    if name == "local" or name.startswith("local:"):
        return "local"
    if name.startswith("scripted:"):
        return "scripted"
    return "remote"


def resolve_model_name(name: str, api_base: str | None) -> Any:
    """``resolve_model`` plus ``scripted:PATH``: a JSON/YAML file of replies for a
    ``ScriptedModel`` (the test double), so tests and demos can drive the CLI offline.

    The file holds a list of replies (answered in order), a mapping ``{substring: reply}``
    (answered by the first key found in the last message), or ``{"replies": ...,
    "supports_tools": bool, "is_base": bool}``. A reply is a string or a ``ModelReply``
    mapping (``text``, ``tool_calls: [{id, name, arguments}]``, token counts, ``cost_usd``).
    """
    if not name.startswith("scripted:"):
        from exapt.agents.models import resolve_model

        return resolve_model(name, api_base=api_base)
    return load_scripted_model(Path(name.removeprefix("scripted:")))


def load_scripted_model(path: Path) -> Any:
    """A ``ScriptedModel`` from a JSON/YAML script file (see ``resolve_model_name``)."""
    import yaml

    from exapt.agents.models import ModelReply, ScriptedModel

    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except OSError as exc:
        raise ConfigError(f"scripted model: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"scripted model: {path} is not JSON/YAML: {exc}") from exc
    options: dict[str, Any] = {}
    if isinstance(data, dict) and "replies" in data:
        options = {k: bool(data[k]) for k in ("supports_tools", "is_base") if k in data}
        data = data["replies"]
    try:
        if isinstance(data, list):
            replies: Any = [r if isinstance(r, str) else ModelReply(**r) for r in data]
        elif isinstance(data, dict):
            replies = {k: r if isinstance(r, str) else ModelReply(**r) for k, r in data.items()}
        else:
            raise TypeError(f"expected a list or a mapping of replies, got {type(data).__name__}")
    except (TypeError, ValidationError) as exc:
        raise ConfigError(
            f"scripted model: {path}: bad reply: {exc}",
            hint="each reply is a string or {text, tool_calls: [{id, name, arguments}]}",
        ) from exc
    return ScriptedModel(replies, name=f"scripted:{path}", **options)


def _specs_for(agent: str | None, model: Any, tasks: list[Any]) -> dict[str, Any]:
    """Task id -> spec: the ``--agent`` spec for every task, or each task's default."""
    from exapt.agents import default_spec_for, load_spec

    if agent is not None:
        spec = load_spec(agent)
        return {task.id: spec for task in tasks}
    return {task.id: default_spec_for(model, task) for task in tasks}


def _check_backend(name: str | None) -> str:
    """The sandbox backend to use: ``name`` if this machine has it, else the best available
    (``UnavailableError`` when none isolates). A dotted path (``module:Class``) is passed on."""
    from exapt.errors import UnavailableError
    from exapt.sandbox import available_backends, default_backend

    if name is None:
        return str(default_backend())
    available = available_backends()
    if name not in available:
        if ":" in name or "." in name:
            return name  # a backend of the user's own: open_sandbox resolves it
        raise ConfigError(
            f"unknown sandbox backend {name!r}",
            hint=f"use one of: {', '.join(available)} (or a dotted path module:Class)",
        )
    reason = available[name]
    if reason is not None:
        raise UnavailableError(f"sandbox backend {name!r} is not usable here: {reason}")
    return name


def _open_memory(choice: bool | None, url: str | None, model: Any) -> Any:
    """Long-term memory for the runner (``model`` writes its reflections), or None.
    ``choice`` None (the default) = on when the memory package can be imported."""
    if choice is False:
        return None
    try:
        from exapt.memory import open_memory
    except ImportError as exc:
        if choice:
            from exapt.errors import UnavailableError

            raise UnavailableError(
                f"long-term memory is not available: {exc}", hint="run with --no-memory"
            ) from exc
        return None
    return open_memory(url, model=model)
