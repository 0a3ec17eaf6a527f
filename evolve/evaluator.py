"""``EngineEvaluator``: evolve's ``Evaluator`` on the run engine (``exapt.engine``) — cache
first, then the engine, every finished attempt stored (by the engine), then cached, then
yielded.

For each (variant, task) pair:

1. the cache (``EvalCache``) has the key -> that result, nothing runs;
2. the trajectory store already holds the attempt (a crash came between the store write
   and the cache write) -> the result is rebuilt from it and cached, nothing runs;
3. otherwise the engine runs it: one ``Engine.evaluate`` per variant (``Target`` = the
   variant's spec; ``run_id = evolve-<variant id>-<hash of model, seed, scorer, suite>``, so the
   engine's own resume is per cache key and ``exapt runs show`` reads one variant's
   attempts), all variants of a call at once on one shared executor (``executors``, which
   keeps ``workers`` attempts running in all and turns a hang into that attempt's result).

Budgets: a call starts at most ``gate.allowance()`` attempts, none once ``gate.open()`` is
False, and gives each engine evaluation what is left of the run's USD, tokens and time as
its ``RunBudget``: no attempt starts once it is spent, but none is cut short by it either
(``cap_attempts=False``: a result is cached as the variant's verdict, so it must not depend
on when in the run the attempt ran); attempts running then finish, so a run overshoots by
at most the attempts it has running.

With ``log``, every attempt's end is appended to that file (JSON lines: ``event`` finish
(stored) | recover (found in the store after a crash, not run again), ``variant``,
``task``, ``t``): an audit of what was run.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from exapt.errors import ExaptError
from exapt.evolve.base import Gate, TaskResult
from exapt.evolve.cache import EvalCache, cache_key, scorer_version, task_hash
from exapt.evolve.jobs import ERROR_KEY, resolve, suite
from exapt.evolve.variant import Variant
from exapt.records import Task, Trajectory


class EvaluationFailed(ExaptError):
    """The evaluation could not go on: a model or sandbox failure (not the variant's)."""


class EngineEvaluator:
    """See the module docstring. ``origin`` names who pays (the archive's uid)."""

    def __init__(
        self,
        suite_name: str,
        *,
        model: str,
        executor: Any,
        cache: EvalCache,
        store: Any,
        origin: str,
        backend: str,
        api_base: str | None = None,
        seed: int = 0,
        log: Path | None = None,
    ) -> None:
        from exapt.engine import Engine
        from exapt.tasks import suite_sandbox_factory

        self.suite_name = suite_name
        self.model = model
        self.api_base = api_base
        self.seed = seed
        self.executor = executor
        self.cache = cache
        self.store = store
        self.origin = origin
        self.backend = backend
        self.log = log
        self.suite = suite(suite_name)
        self.model_obj = resolve(model, api_base)
        self.sandbox = suite_sandbox_factory(self.suite, backend)
        self.scorer_version = scorer_version(self.suite.scorer())
        # The suite's content is part of each run id: the engine resumes by (run id, task id),
        # so an edited task file must not find its old attempts there.
        contents = "".join(task_hash(t) for t in self.suite.tasks())
        self.suite_hash = hashlib.sha256(contents.encode()).hexdigest()[:8]
        errors = log.with_name("errors.log") if log is not None else None
        self.engine = Engine(store, executor, errors_log=errors)
        executor.tag = self._tag
        if hasattr(executor, "configure"):  # executors in other processes work by names
            executor.configure(model=model, api_base=api_base, suite=suite_name, backend=backend)
        self._by_run: dict[str, Variant] = {}
        self._log_lock = threading.Lock()

    # --- keys ------------------------------------------------------------------------

    def key(self, variant: Variant, task: Task) -> str:
        return cache_key(variant.id, task, self.model, self.seed, self.scorer_version)

    def run_id(self, variant: Variant) -> str:
        salt = f"{self.model}\x00{self.seed}\x00{self.scorer_version}\x00{self.suite_hash}"
        return f"evolve-{variant.id}-{hashlib.sha256(salt.encode()).hexdigest()[:8]}"

    def lookup(self, variant: Variant, task: Task) -> TaskResult | None:
        """The known result of (variant, task), from the cache or the store; None if none."""
        key = self.key(variant, task)
        found = self.cache.get(key)
        if found is not None:
            result, origin = found
            return result.model_copy(update={"cached": origin != self.origin})
        for t in self.store.trajectories(self.run_id(variant), task.id, with_steps=False):
            if t.metadata.get("evolve_key") == key:
                result = self._result(variant, t)
                self._cache(key, result)
                self._log("recover", variant.id, task.id)  # once cached: never logged twice
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
        todo: list[tuple[Variant, Task]] = []
        for variant, task in pairs:
            known = self.lookup(variant, task)
            if known is not None:
                yield known
            else:
                todo.append((variant, task))
        if not todo or not gate.open():
            return
        allowed = gate.allowance()
        cut = allowed is not None and allowed < len(todo)
        if allowed is not None:
            todo = todo[: max(0, allowed)]
        groups: dict[str, tuple[Variant, list[Task]]] = {}
        for variant, task in todo:
            groups.setdefault(variant.id, (variant, []))[1].append(task)
        results: queue.Queue[TaskResult] = queue.Queue()
        outcomes: list[Any] = []
        threads = []
        for variant, tasks in groups.values():
            try:
                spec = variant.load_spec()
            except ExaptError as exc:
                for task in tasks:
                    yield TaskResult(variant_id=variant.id, task_id=task.id,
                                     error=f"load: {exc.message}")  # fmt: skip
                continue
            self._by_run[self.run_id(variant)] = variant
            thread = threading.Thread(
                target=self._run, args=(variant, spec, tasks, gate, results, outcomes),
                name=f"evolve-eval-{variant.id}", daemon=True,
            )  # fmt: skip
            thread.start()
            threads.append(thread)
        seen: set[tuple[str, str]] = set()
        while any(t.is_alive() for t in threads) or not results.empty():
            try:
                result = results.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.add((result.variant_id, result.task_id))
            yield result
        for variant, tasks in groups.values():  # stored in an earlier session, not re-run
            if self.run_id(variant) not in self._by_run:
                continue  # it did not load
            for task in tasks:
                if (variant.id, task.id) not in seen and (late := self._stored(variant, task)):
                    yield late
        failed = [e for e in outcomes if e.status == "failed"]
        if failed:
            raise EvaluationFailed(
                f"evaluation stopped: {failed[0].error}",
                hint="finished evaluations are kept; fix the cause and resume (--resume)",
            )
        if any(e.status == "interrupted" for e in outcomes):
            raise KeyboardInterrupt
        if cut:
            gate.open()  # let the gate record why the rest did not start

    def _run(self, variant: Variant, spec: Any, tasks: list[Task], gate: Gate,
             results: queue.Queue[TaskResult], outcomes: list[Any]) -> None:  # fmt: skip
        from exapt.engine import RunBudget, Target

        left = gate.attempt_budget()
        budget = RunBudget(
            max_cost_usd=getattr(left, "max_cost_usd", None),
            max_tokens=getattr(left, "max_tokens", None),
            max_wall_s=getattr(left, "max_wall_s", None),
            cap_attempts=False,  # a cached result is the variant's own, never a cut attempt
        )
        target = Target(model=self._model_of(spec), suite=self.suite, sandbox=self.sandbox,
                        spec=spec)  # fmt: skip

        def stored(attempt: Any) -> None:  # the engine has just stored it
            t = attempt.trajectory
            result = self._result(variant, t)
            self._cache(str(t.metadata.get("evolve_key", "")), result)
            # logged once cached: a kill between the store and the cache leaves no "finish",
            # and the resumed run logs its "recover" instead (one event per evaluation)
            self._log("finish", variant.id, t.task_id)
            results.put(result)

        outcome = self.engine.evaluate(
            target, tasks, run_id=self.run_id(variant), budget=budget, on_attempt=stored
        )
        outcomes.append(outcome)

    def _model_of(self, spec: Any) -> Any:
        """The run's model, or the variant's own ``policy:NAME`` (a LoRA policy child; its
        variant id, hence its cache key, names the policy)."""
        own = str(getattr(spec, "model", None) or "")
        return resolve(own, None) if own.startswith("policy:") else self.model_obj

    def _tag(self, job: Any, attempt: Any) -> None:
        """Mark an attempt with its cache key before the engine stores it."""
        variant = self._by_run.get(job.run_id)
        if variant is None:
            return
        t = attempt.trajectory
        t.metadata = {**t.metadata, "evolve_key": self.key(variant, job.task),
                      "variant_tree_id": variant.id, "seed": self.seed}  # fmt: skip

    def _stored(self, variant: Variant, task: Task) -> TaskResult | None:
        found = self.store.trajectories(self.run_id(variant), task.id, with_steps=False)
        if not found:
            return None
        t = found[0]
        if t.metadata.get("evolve_key") != self.key(variant, task):
            return TaskResult(variant_id=variant.id, task_id=task.id,
                              error="stale: the store holds an attempt of another version "
                              "of this task under this variant's run")  # fmt: skip
        return self._result(variant, t)

    def _result(self, variant: Variant, t: Trajectory) -> TaskResult:
        return TaskResult(
            variant_id=variant.id,
            task_id=t.task_id,
            reward=t.result.reward,
            passed=t.result.passed,
            feedback=t.result.feedback,
            error=t.metadata.get(ERROR_KEY),
            stop_reason=t.result.stop_reason,
            cost_usd=t.cost_usd,
            tokens=t.tokens_in + t.tokens_out,
            wall_s=t.wall_s,
            run_id=t.run_id,
            trial=t.trial,
        )

    def _cache(self, key: str, result: TaskResult) -> None:
        if not key:
            return
        self.cache.put(key, result, model=self.model, seed=self.seed,
                       scorer=self.scorer_version, origin=self.origin)  # fmt: skip

    def _log(self, event: str, variant_id: str, task_id: str) -> None:
        if self.log is None:
            return
        line = json.dumps({"event": event, "variant": variant_id, "task": task_id,
                           "t": time.time()})  # fmt: skip
        with self._log_lock, self.log.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
