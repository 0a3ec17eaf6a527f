"""``ArchiveContext``: what operators may read during a run (the ``MutationContext``).

Trajectories reach operators from the feedback split only (train by default): a parent's
failed attempts are made on demand — it is run on ``feedback_tasks`` tasks of that split
(cached like any evaluation, paid from the run's budget) — and exemplars come from passed
attempts on those tasks in the trajectory store, whoever made them — trusted passes only
(``Outcome.trusted``: learning signals are trusted or unused). Operators see tasks
as records; the hidden part is used here only to redact feedback (``safety``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from exapt.evolve.archive import Archive
from exapt.evolve.base import Candidate, Gate
from exapt.evolve.evaluator import EngineEvaluator
from exapt.evolve.variant import Variant
from exapt.records import Task, Trajectory


class ArchiveContext:
    def __init__(
        self,
        archive: Archive,
        evaluator: EngineEvaluator,
        feedback: Sequence[Task],
        *,
        feedback_tasks: int,
        seed: int,
        gate: Gate,
        population: Callable[[], list[Candidate]],
        mutator: Callable[[], Any],
    ) -> None:
        self.archive = archive
        self.evaluator = evaluator
        self.feedback = list(feedback)
        self._by_id = {t.id: t for t in self.feedback}
        self.feedback_tasks = feedback_tasks
        self.seed = seed
        self.gate = gate
        self._population = population
        self._mutator = mutator

    def variant(self, variant_id: str) -> Variant:
        return self.archive.variant(variant_id)

    def population(self) -> Sequence[Candidate]:
        return self._population()

    def ancestors(self, variant_id: str) -> list[str]:
        return sorted(self.archive.ancestors(variant_id))

    def task(self, task_id: str) -> Task | None:
        return self._by_id.get(task_id)

    def mutator(self) -> Any:
        return self._mutator()

    def feedback_batch(self, variant: Variant) -> list[Task]:
        """The feedback tasks this variant is run on (the same ones every time)."""
        rng = random.Random(f"{self.seed}:feedback:{variant.id}")
        k = min(self.feedback_tasks, len(self.feedback))
        return rng.sample(self.feedback, k) if k else []

    def failed_trajectories(self, variant: Variant, limit: int) -> list[Trajectory]:
        """The variant's failed attempts on its feedback batch (run now unless cached)."""
        failed: list[Trajectory] = []
        results = self.run_feedback(variant, self.feedback_batch(variant))
        for result in sorted(results, key=lambda r: r.task_id):
            if result.passed or result.error is not None:
                continue
            trajectory = self.evaluator.trajectory(result)
            if trajectory is not None:
                failed.append(trajectory)
            if len(failed) >= limit:
                break
        return failed

    def run_feedback(self, variant: Variant, tasks: Sequence[Task]) -> list[Any]:
        """Run ``variant`` on feedback ``tasks`` (cached), recorded in its archive entry."""
        pairs = [(variant, task) for task in tasks]
        known = self.archive.has(variant.id)
        results = []
        for result in self.evaluator.evaluate(pairs, gate=self.gate):
            if known:  # recorded as it comes: the budget gate counts it before the next one
                self.archive.record_score(result, split="feedback", fresh=not result.cached)
            results.append(result)
        return results

    def passed_trajectories(self, variant: Variant, limit: int) -> list[Trajectory]:
        """Trusted passes (``Outcome.trusted``: the judge's own evidence) on feedback tasks:
        ``variant``'s feedback batch is run first (cached), then the trajectory store is
        read (any run, any variant), in task order."""
        self.run_feedback(variant, self.feedback_batch(variant))
        store = self.evaluator.store
        found: list[Trajectory] = []
        for task in sorted(self.feedback, key=lambda t: t.id):
            heads = [t for t in store.trajectories(task_id=task.id, with_steps=False)
                     if t.result.trusted]  # fmt: skip
            for head in sorted(heads, key=lambda t: (t.run_id, t.trial))[:1]:
                full = store.trajectories(head.run_id, head.task_id)
                found.extend(t for t in full if t.trial == head.trial)
            if len(found) >= limit:
                break
        return found[:limit]
