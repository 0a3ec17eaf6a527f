"""``Engine``: attempts over tasks × trials on an ``Executor``, each stored the moment it is
scored, then learned from; budgets, trials, resume, progress. ``exapt run`` and ``exapt
evolve`` both evaluate through it.

For every attempt, in order:

1. the executor runs it (recall, agent, snapshot, score: ``executor.run_job``);
2. the engine stores it in the ``TrajectoryStore`` at once — from then on nothing is lost;
3. memory learns from it in a learner thread; a failure to learn (Chroma down, a bug) is
   logged on the stored attempt (``metadata.learn_error``) and in the errors log, and the
   run goes on;
4. a task that failed gets its next trial (Reflexion) once its memory has learned.

An evaluation ends ``done`` (every task passed or used its trials), ``stopped`` (a
``RunBudget`` limit: no new attempt starts, running ones finish), ``failed`` (a
``ModelError`` or another infrastructure error: running ones finish and are kept) or
``interrupted`` (Ctrl-C: attempts still running are dropped — a terminal's Ctrl-C reaches
their sandboxes too — and a resume re-runs them; a second Ctrl-C stops waiting for them).

Resume is the store: ``prepare`` counts what the store holds for the run id, and only the
(task, trial) pairs not stored yet run. A ``cache`` (e.g. ``StoreCache``) reuses attempts of
the same variant, task, model and trial from other runs.

Example:
    engine = Engine(TrajectoryStore(), LocalExecutor(workers=4))
    result = engine.evaluate(Target(model=model, suite=suite, sandbox=factory, spec=spec),
                             tasks, run_id="evolve-g1-3f2a")
    result.scores()  # {task_id: Score}
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from exapt.agents import Attempt
from exapt.agents.budget import Budget
from exapt.agents.spec import AgentSpec
from exapt.engine.config import RunBudget, new_run_id
from exapt.engine.executor import AttemptJob, Executor, LocalExecutor
from exapt.engine.state import Progress, Target, TaskState
from exapt.errors import ExaptError
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Score, Task, Trajectory

log = logging.getLogger(__name__)


class AttemptCache(Protocol):
    """Attempts already made elsewhere: ``lookup`` returns one for this (spec, task, model,
    trial), or None to run it."""

    def lookup(self, spec: AgentSpec, task: Task, model: str, trial: int) -> Attempt | None: ...


@dataclass
class Evaluation:
    """One evaluation as it stands (live while ``Engine.execute`` runs)."""

    run_id: str
    target: Target
    tasks: list[Task]
    trials: int = 1
    budget: RunBudget = field(default_factory=RunBudget)
    states: dict[str, TaskState] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)  # this session's, cached included
    status: str = "running"  # running | done | stopped | failed | interrupted
    stop_detail: str | None = None
    error: str | None = None
    abandoned: bool = False  # a second Ctrl-C left attempts' threads behind
    elapsed_before: float = 0.0  # wall seconds of earlier sessions of a resumed run
    started: float = field(default_factory=time.monotonic)

    def totals(self) -> tuple[int, float, float]:
        """(tokens in + out, cost in USD, wall seconds) of the whole evaluation so far."""
        tokens = sum(s.tokens_in + s.tokens_out for s in self.states.values())
        cost = sum(s.cost_usd for s in self.states.values())
        return tokens, cost, self.elapsed_before + (time.monotonic() - self.started)

    def progress(self, running: int, note: str = "") -> Progress:
        tokens, cost, wall = self.totals()
        finished = [s for s in self.states.values() if s.next_trial(self.trials) is None]
        return Progress(
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

    def scores(self) -> dict[str, Score]:
        """Task id -> the score of its best attempt of this session (highest reward, then
        the earliest trial)."""
        best: dict[str, Attempt] = {}
        for a in self.attempts:
            kept = best.get(a.task_id)
            if kept is None or (a.score.reward, -a.trial) > (kept.score.reward, -kept.trial):
                best[a.task_id] = a
        return {task_id: a.score for task_id, a in best.items()}

    def stop(self, status: str, detail: str) -> None:
        """The first reason to stop wins; later ones (e.g. more ModelErrors) are dropped."""
        if self.status != "running":
            return
        self.status = status
        if status == "failed":
            self.error = detail
        else:
            self.stop_detail = detail

    def attempt_budget(self) -> Budget:
        """What is left of the run's budget, as a cap for one attempt."""
        b = self.budget
        if not b.cap_attempts:
            return Budget()
        tokens, cost, wall = self.totals()
        return Budget(
            max_tokens=max(1, b.max_tokens - tokens) if b.max_tokens else None,
            max_cost_usd=max(1e-9, b.max_cost_usd - cost) if b.max_cost_usd else None,
            max_wall_s=max(1.0, b.max_wall_s - wall) if b.max_wall_s else None,
        )


class Engine:
    """Evaluates ``Target``s on tasks (see the module docstring). ``errors_log``: a file
    that gets the traceback of every failed attempt and failed learning (else the log).
    ``keep_workspaces``: keep each attempt's final workspace in its ``Attempt``."""

    def __init__(
        self,
        store: TrajectoryStore,
        executor: Executor | None = None,
        *,
        errors_log: Path | None = None,
        keep_workspaces: bool = False,
    ) -> None:
        self.store = store
        self.executor: Executor = executor or LocalExecutor()
        self.errors_log = errors_log
        self.keep_workspaces = keep_workspaces
        self._log_lock = threading.Lock()

    def evaluate(
        self,
        target: Target,
        tasks: list[Task],
        *,
        run_id: str | None = None,
        trials: int = 1,
        budget: RunBudget | None = None,
        cache: AttemptCache | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> Evaluation:
        """``prepare`` then ``execute``: every pending attempt of ``tasks`` run and stored.
        A new run id is made when none is given; an existing one resumes."""
        evaluation = self.prepare(
            target, tasks, run_id=run_id or new_run_id(), trials=trials, budget=budget
        )
        return self.execute(evaluation, cache=cache, on_progress=on_progress, on_attempt=on_attempt)

    def prepare(
        self,
        target: Target,
        tasks: list[Task],
        *,
        run_id: str,
        trials: int = 1,
        budget: RunBudget | None = None,
        elapsed_before: float = 0.0,
    ) -> Evaluation:
        """An ``Evaluation`` whose task states count what the store already holds for
        ``run_id`` (so only what is missing runs). Starts nothing."""
        evaluation = Evaluation(
            run_id=run_id,
            target=target,
            tasks=tasks,
            trials=trials,
            budget=budget or RunBudget(),
            elapsed_before=elapsed_before,
        )
        self.reload(evaluation)
        return evaluation

    def reload(self, evaluation: Evaluation) -> None:
        """Rebuild every task's state from the attempts the store holds for the run."""
        evaluation.states = {task.id: TaskState() for task in evaluation.tasks}
        for t in self.store.trajectories(evaluation.run_id, with_steps=False):
            if t.task_id in evaluation.states:
                evaluation.states[t.task_id].add(t)

    def execute(
        self,
        evaluation: Evaluation,
        *,
        cache: AttemptCache | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        on_finish: Callable[[Evaluation], None] | None = None,
    ) -> Evaluation:
        """Run every pending attempt of ``evaluation``; return it with its final status.

        Never raises for what an attempt does. ``on_attempt`` gets every stored attempt,
        ``on_progress`` a snapshot at least every half second, ``on_finish`` the evaluation
        once its status is final — before waiting for attempts an interrupt left running.
        """
        loop = _Loop(self, evaluation, cache, on_progress or (lambda _p: None), on_attempt)
        evaluation.started = time.monotonic()
        try:
            loop.run()
        except KeyboardInterrupt:
            evaluation.stop("interrupted", "interrupted by Ctrl-C or SIGTERM")
        except Exception as exc:  # the store or a callback broke: end the run, say why
            self.log_error(evaluation.run_id, "-", -1, exc)
            evaluation.stop("failed", f"{type(exc).__name__}: {exc}")
        if evaluation.status == "running":
            evaluation.status = "done"
        if on_finish is not None:
            on_finish(evaluation)
        loop.drain()
        return evaluation

    # --- what the loop calls back -----------------------------------------------------

    def log_error(self, run_id: str, task_id: str, trial: int, exc: BaseException) -> None:
        """Append a traceback to the errors log (the summary keeps one line)."""
        text = "".join(traceback.format_exception(exc))
        if self.errors_log is None:
            log.error("run %s task %s trial %d: %s", run_id, task_id, trial, text)
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._log_lock:
            self.errors_log.parent.mkdir(parents=True, exist_ok=True)
            with self.errors_log.open("a", encoding="utf-8") as handle:
                handle.write(f"--- {stamp} task {task_id} trial {trial}\n{text}\n")


class _Loop:
    """The scheduling of one ``Engine.execute``: attempts in the executor, learning in a
    pool of learner threads, the next trial once a failed task's memory has learned."""

    def __init__(
        self,
        engine: Engine,
        evaluation: Evaluation,
        cache: AttemptCache | None,
        notify: Callable[[Progress], None],
        on_attempt: Callable[[Attempt], None] | None,
    ) -> None:
        self.engine, self.ev, self.cache = engine, evaluation, cache
        self.notify, self.on_attempt = notify, on_attempt
        self.work: deque[tuple[Task, int]] = deque()
        for task in evaluation.tasks:
            trial = evaluation.states[task.id].next_trial(evaluation.trials)
            if trial is not None:
                self.work.append((task, trial))
        self.running: dict[Future[Attempt], tuple[Task, int]] = {}
        self.learning: dict[Future[None], tuple[Task, Attempt]] = {}
        self.learner = ThreadPoolExecutor(
            engine.executor.workers, thread_name_prefix=f"learn-{evaluation.run_id}"
        )

    @property
    def workers(self) -> int:
        return self.engine.executor.workers

    def run(self) -> None:
        ev = self.ev
        while self.running or self.learning or (self.work and ev.status == "running"):
            while self.work and ev.status == "running" and len(self.running) < self.workers:
                self._start(*self.work.popleft())
            pending: list[Future[Any]] = [*self.running, *self.learning]
            finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                if future in self.running:
                    self._scored(future)  # type: ignore[arg-type]
                else:
                    self._learned(future)  # type: ignore[arg-type]
            if ev.status == "running" and (hit := ev.budget.reached(*ev.totals())):
                ev.stop("stopped", hit)
            self.notify(ev.progress(len(self.running)))

    def _start(self, task: Task, trial: int) -> None:
        ev = self.ev
        spec = ev.target.spec_for(task)
        if self.cache is not None:
            found = self.cache.lookup(spec, task, ev.target.model.name, trial)
            if found is not None:
                self._store(task, _cached_copy(found, ev.run_id))
                return
        job = AttemptJob(
            task=task,
            trial=trial,
            spec=spec,
            model=ev.target.model,
            suite=ev.target.suite,
            sandbox=ev.target.sandbox,
            run_id=ev.run_id,
            memory=ev.target.memory,
            budget=ev.attempt_budget(),
        )
        self.running[self.engine.executor.submit(job)] = (task, trial)

    def _scored(self, future: Future[Attempt]) -> None:
        task, trial = self.running.pop(future)
        try:
            attempt = future.result()
        except ExaptError as exc:  # ModelError, SandboxError...: fatal for the run
            self.engine.log_error(self.ev.run_id, task.id, trial, exc)
            self.ev.stop("failed", f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # a bug in an agent or a scorer: stop, keep the rest
            self.engine.log_error(self.ev.run_id, task.id, trial, exc)
            self.ev.stop("failed", f"{type(exc).__name__} on task {task.id}: {exc}")
            return
        if self.ev.status == "interrupted":  # not trusted: a resume runs it again
            return
        attempt.trajectory.run_id, attempt.trajectory.trial = self.ev.run_id, trial
        self._store(task, attempt)

    def _store(self, task: Task, attempt: Attempt) -> None:
        """Store first; then learn (or go on with the next trial at once)."""
        self.engine.store.add(attempt.trajectory)
        self.ev.states[task.id].add(attempt.trajectory)
        self.ev.attempts.append(attempt)
        if self.on_attempt is not None:
            self.on_attempt(attempt)
        memory = self.ev.target.memory
        if memory is None or attempt.cached or not self.ev.target.spec_for(task).memory.enabled:
            self._next(task, attempt)
            return
        future = self.learner.submit(
            memory.learn, task, attempt.trajectory, attempt.score, attempt.workspace
        )
        self.learning[future] = (task, attempt)

    def _learned(self, future: Future[None]) -> None:
        task, attempt = self.learning.pop(future)
        exc = future.exception()
        if exc is not None:  # the attempt is stored: note why memory did not learn from it
            error = f"{type(exc).__name__}: {exc}"[:1000]
            t = attempt.trajectory
            t.metadata["learn_error"] = error
            self.engine.store.update_metadata(t.run_id, t.task_id, t.trial, learn_error=error)
            self.ev.states[task.id].learn_errors += 1
            self.engine.log_error(t.run_id, task.id, t.trial, exc)
        self._next(task, attempt)

    def _next(self, task: Task, attempt: Attempt) -> None:
        if not self.engine.keep_workspaces:
            attempt.workspace = {}
        trial = self.ev.states[task.id].next_trial(self.ev.trials)
        if trial is not None:  # failed: the next trial, with its reflections
            self.work.append((task, trial))

    def drain(self) -> None:
        """Wait for what still runs (results of an interrupted run are dropped); a second
        Ctrl-C leaves their threads behind (``abandoned``)."""
        if self.running:
            self.notify(
                self.ev.progress(
                    len(self.running),
                    "waiting for the running attempts to stop (their results are dropped; "
                    "resume re-runs them); Ctrl-C again to leave at once",
                )
            )
        try:
            self.engine.executor.shutdown(wait=True)
            self.learner.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:
            self.ev.abandoned = True


def _cached_copy(found: Attempt, run_id: str) -> Attempt:
    """A cached attempt as this run's: its result, no steps and no cost of its own (both
    stay with the run that made it, named in ``metadata.cached_from``)."""
    t = found.trajectory
    copy = Trajectory(
        run_id=run_id,
        task_id=t.task_id,
        trial=t.trial,
        variant_id=t.variant_id,
        model=t.model,
        result=t.result,
        metadata={**t.metadata, "cached_from": {"run_id": t.run_id, "trial": t.trial}},
    )
    return Attempt(trajectory=copy, score=found.score, workspace={}, cached=True)
