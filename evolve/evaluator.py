"""``RunTaskEvaluator``: the ``Evaluator`` of evolve — cache first, then jobs on an executor,
every finished attempt stored (trajectory store, then cache) before it is yielded.

For each (variant, task) pair:

1. the cache (``EvalCache``) has the key -> that result, nothing runs;
2. the trajectory store already holds the attempt (a crash came between the store write
   and the cache write) -> the result is rebuilt from it and cached, nothing runs;
3. otherwise a ``Job`` runs on the executor; at most ``executor.workers`` at a time, a
   new one only while ``gate.open()``; a job without a result after ``job_timeout_s`` is
   abandoned and scored as ``hang``.

With ``log``, every job's start and end is appended to that file (JSON lines: ``event``
start | finish (stored) | crash | hang | infra | recover (found in the store after a
crash, not run again), ``variant``, ``task``, ``t``): an audit of what was run.

Trajectories are stored under ``run_id = evolve-<variant id>-<hash of model, seed,
scorer>`` (trial 0), so storing is idempotent per cache key and ``exapt runs show`` reads
one variant's attempts.

Pre-engine wiring: the jobs call ``run_task`` (``evolve.jobs``); when the run engine
lands, this file maps onto it and keeps its contract.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import Any

from exapt.errors import ExaptError
from exapt.evolve.base import Gate, TaskResult
from exapt.evolve.cache import EvalCache, cache_key, scorer_version
from exapt.evolve.executors import Executor
from exapt.evolve.jobs import Job, JobOutcome, run_job, suite
from exapt.evolve.variant import Variant
from exapt.records import Task, Trajectory


class EvaluationFailed(ExaptError):
    """The evaluation could not go on: a model or sandbox failure (not the variant's)."""


class RunTaskEvaluator:
    """See the module docstring. ``origin`` names who pays (the archive's uid)."""

    def __init__(
        self,
        suite_name: str,
        *,
        model: str,
        executor: Executor,
        cache: EvalCache,
        store: Any,
        origin: str,
        backend: str,
        api_base: str | None = None,
        seed: int = 0,
        job_timeout_s: float = 1800.0,
        job_fn: Callable[[Job], JobOutcome] = run_job,
        log: Path | None = None,
    ) -> None:
        self.suite_name = suite_name
        self.model = model
        self.api_base = api_base
        self.seed = seed
        self.executor = executor
        self.cache = cache
        self.store = store
        self.origin = origin
        self.backend = backend
        self.job_timeout_s = job_timeout_s
        self.job_fn = job_fn
        self.log = log
        self.scorer_version = scorer_version(suite(suite_name).scorer())
        self._runs_made: set[str] = set()
        #: keys this process evaluated or found paid by ``origin``: "fresh" for the archive
        self.fresh_keys: set[str] = set()

    # --- keys ------------------------------------------------------------------------

    def key(self, variant: Variant, task: Task) -> str:
        return cache_key(variant.id, task, self.model, self.seed, self.scorer_version)

    def run_id(self, variant: Variant) -> str:
        salt = f"{self.model}\x00{self.seed}\x00{self.scorer_version}".encode()
        return f"evolve-{variant.id}-{hashlib.sha256(salt).hexdigest()[:8]}"

    def lookup(self, variant: Variant, task: Task) -> TaskResult | None:
        """The known result of (variant, task), from the cache or the store; None if none."""
        key = self.key(variant, task)
        found = self.cache.get(key)
        if found is not None:
            result, origin = found
            if origin == self.origin:
                self.fresh_keys.add(key)
            return result.model_copy(update={"cached": origin != self.origin})
        for t in self.store.trajectories(self.run_id(variant), task.id, with_steps=False):
            if t.metadata.get("evolve_key") == key:
                self._log("recover", variant, task)
                result = _result(variant, task, t)
                self._cache(key, result)
                self.fresh_keys.add(key)
                return result
        return None

    def trajectory(self, result: TaskResult) -> Trajectory | None:
        """The stored trajectory of a result, with its steps (None if it has none)."""
        if not result.run_id:
            return None
        found = self.store.trajectories(result.run_id, result.task_id)
        return found[0] if found else None

    # --- evaluation ------------------------------------------------------------------

    def evaluate(
        self, pairs: Sequence[tuple[Variant, Task]], *, gate: Gate | None = None
    ) -> Iterator[TaskResult]:
        gate = gate or Gate()
        todo: deque[tuple[Variant, Task]] = deque()
        for variant, task in pairs:
            known = self.lookup(variant, task)
            if known is not None:
                yield known
            else:
                todo.append((variant, task))
        running: dict[Future[Any], tuple[Variant, Task, float]] = {}
        fatal: str | None = None
        while todo or running:
            while todo and fatal is None and len(running) < self.executor.workers and gate.open():
                variant, task = todo.popleft()
                future = self.executor.submit(self.job_fn, self._job(variant, task, gate))
                running[future] = (variant, task, time.monotonic())
                self._log("start", variant, task)
            if not running:
                break  # the gate closed (budget) or a fatal error: the rest is not started
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                variant, task, _started = running.pop(future)
                outcome = _outcome(future)
                if outcome.infra is not None:
                    fatal = fatal or outcome.infra
                    self._log("infra", variant, task)
                    continue
                yield self._record(variant, task, outcome)
            now = time.monotonic()
            for future, (variant, task, started) in list(running.items()):
                if now - started > self.job_timeout_s:
                    self.executor.cancel(future)
                    del running[future]
                    self._log("hang", variant, task)
                    yield TaskResult(
                        variant_id=variant.id,
                        task_id=task.id,
                        error=f"hang: no result after {self.job_timeout_s:.0f} s",
                        wall_s=now - started,
                    )
        if fatal is not None:
            raise EvaluationFailed(
                f"evaluation stopped: {fatal}",
                hint="finished evaluations are kept; fix the cause and resume (--resume)",
            )

    def _log(self, event: str, variant: Variant, task: Task) -> None:
        """One line of the jobs log (an audit of every attempt started and finished)."""
        if self.log is None:
            return
        line = json.dumps({"event": event, "variant": variant.id, "task": task.id,
                           "t": time.time()})  # fmt: skip
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def _job(self, variant: Variant, task: Task, gate: Gate) -> Job:
        return Job(
            variant_files=variant.files,
            variant_id=variant.id,
            task=task,
            suite=self.suite_name,
            model=self.model,
            api_base=self.api_base,
            backend=self.backend,
            run_id=self.run_id(variant),
            budget=gate.attempt_budget(),
        )

    def _record(self, variant: Variant, task: Task, outcome: JobOutcome) -> TaskResult:
        """Store the trajectory (first), then cache the result; return it."""
        if outcome.trajectory is None or outcome.score is None:
            self._log("crash", variant, task)
            return TaskResult(variant_id=variant.id, task_id=task.id, error=outcome.crash)
        key = self.key(variant, task)
        trajectory = outcome.trajectory
        trajectory.run_id, trajectory.trial = self.run_id(variant), 0
        trajectory.variant_id = variant.id  # the tree id, not the spec-fields hash
        trajectory.metadata = {**trajectory.metadata, "evolve_key": key, "seed": self.seed}
        self._ensure_run(variant)
        self.store.add(trajectory)
        self._log("finish", variant, task)  # finished = stored: it is never run again
        result = _result(variant, task, trajectory)
        self._cache(key, result)
        self.fresh_keys.add(key)
        return result

    def _cache(self, key: str, result: TaskResult) -> None:
        self.cache.put(
            key,
            result,
            model=self.model,
            seed=self.seed,
            scorer=self.scorer_version,
            origin=self.origin,
        )

    def _ensure_run(self, variant: Variant) -> None:
        run_id = self.run_id(variant)
        if run_id in self._runs_made:
            return
        config = {
            "kind": "evolve",
            "suite": self.suite_name,
            "model": self.model,
            "seed": self.seed,
            "variant_id": variant.id,
            "archive": self.origin,
        }
        self.store.create_run(run_id, config)
        summary = {"suite": self.suite_name, "model": self.model, "agent": variant.id}
        self.store.finish_run(run_id, summary, "done")  # each stored attempt is final
        self._runs_made.add(run_id)


def _outcome(future: Future[Any]) -> JobOutcome:
    try:
        outcome = future.result()
    except TimeoutError as exc:  # abandoned by cancel() racing with completion
        return JobOutcome(crash=f"hang: {exc}")
    except Exception as exc:  # the job function itself failed (e.g. a Ray worker died)
        return JobOutcome(infra=f"{type(exc).__name__}: {exc}")
    if not isinstance(outcome, JobOutcome):
        return JobOutcome(infra=f"job returned {type(outcome).__name__}, not a JobOutcome")
    return outcome


def _result(variant: Variant, task: Task, t: Trajectory) -> TaskResult:
    return TaskResult(
        variant_id=variant.id,
        task_id=task.id,
        reward=t.result.reward,
        passed=t.result.passed,
        feedback=t.result.feedback,
        stop_reason=t.result.stop_reason,
        cost_usd=t.cost_usd,
        tokens=t.tokens_in + t.tokens_out,
        wall_s=t.wall_s,
        run_id=t.run_id,
        trial=t.trial,
    )
