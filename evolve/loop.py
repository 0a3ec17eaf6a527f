"""``Evolution``: the generation loop — select -> mutate -> evaluate in stages -> archive.

A generation ``g`` has ``children`` slots. The parents of all slots are drawn at once by
the selector from the archive as it stood after generation ``g-1``; slot ``i`` gets its
own rng (``seed:mutate:g:i``), so what a slot proposes does not depend on the order
evaluations finish in, on the executor, or on a crash. Each slot's proposal is filtered
for novelty, written to the archive (folder, then row) and recorded as an ``Attempt``;
then every new child of the generation is evaluated stage by stage (``staged``), all
children of a stage together so the executor stays busy.
The mutate step of a slot is ``children.make_child``; staged evaluation and the verdict after
each stage are in ``acceptance``.

Resume (``--resume``): the archive is the state. Slots with an attempt row or an entry are
not proposed again; children still ``pending``/``evaluating`` continue from the stage
they completed; every evaluation already cached (or stored) is not run again.

Budgets (USD, tokens, hours, evaluations) close the ``gate``: no new attempt starts,
running ones finish, and the run ends ``stopped``. The held-out test split is scored at
the end for the best accepted variant and the seed, and the claim carries a paired
bootstrap interval (``stats``); that scoring runs after a budget stop too.
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.acceptance import evaluate_staged
from exapt.evolve.archive import Archive, ArchiveEntry
from exapt.evolve.base import Candidate, Operator, Selector, TaskResult
from exapt.evolve.budget import BudgetGate, EvolveProgress
from exapt.evolve.children import make_child
from exapt.evolve.choice import FixedWeights, GainBandit, Use, uses
from exapt.evolve.config import EvolveConfig
from exapt.evolve.context import ArchiveContext
from exapt.evolve.evaluator import EngineEvaluator
from exapt.evolve.novelty import NoveltyFilter
from exapt.evolve.staged import StagePlan
from exapt.evolve.stats import paired_bootstrap
from exapt.evolve.variant import Variant
from exapt.records import Task


class Evolution:
    """One evolution run over an archive (see the module docstring)."""

    def __init__(
        self,
        config: EvolveConfig,
        archive: Archive,
        evaluator: EngineEvaluator,
        *,
        seed_variant: Variant,
        order: list[Task],
        feedback: list[Task],
        test: list[Task],
        selector: Selector,
        operators: dict[str, Operator],
        mutator: Callable[[], Any],
        on_progress: Callable[[EvolveProgress], None] | None = None,
    ) -> None:
        self.config = config
        self.archive = archive
        self.evaluator = evaluator
        self.seed_variant = seed_variant
        self.order = order
        self.order_ids = [t.id for t in order]
        self.test = test
        self.selector = selector
        self.operators = operators
        self.plan = StagePlan.parse(config.stages, config.thresholds)
        self.novelty = NoveltyFilter(config.embedder, config.novelty_threshold)
        self.choice = (
            GainBandit(sorted(operators))
            if config.operator_choice == "bandit"
            else FixedWeights({k: config.operators[k] for k in operators})
        )
        self.on_progress = on_progress or (lambda _p: None)
        self.status = "running"
        self.stop_detail: str | None = None
        self.testing = False
        self.generation = 0
        self._started = time.monotonic()
        self._wall_before = float(archive.meta("wall_s", 0.0))
        self._last_wall_save = time.monotonic()
        self.gate = BudgetGate(self)
        self.finetune: Operator | None = None  # exapt.evolve.finetune, with --finetune-every
        self.ctx = ArchiveContext(
            archive,
            evaluator,
            feedback,
            feedback_tasks=config.feedback_tasks,
            seed=config.seed,
            gate=self.gate,
            population=lambda: self.population(self.generation - 1),
            mutator=mutator,
        )

    # --- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) to the last generation or a budget; return the summary.
        ``EvaluationFailed`` (model or sandbox down) and Ctrl-C propagate, the archive
        consistent and resumable."""
        self.archive.remove_orphans()
        self._set_run_meta()
        try:
            self._seed()
            for g in range(1, self.config.generations + 1):
                if self.status != "running":
                    break
                self.generation = g
                self._generation(g)
            if self.status == "running":
                self.status = "done"
            self.archive.set_meta("search_wall_s", self.elapsed())
            if self.config.final_test and self.test:
                self._final_test()
        except KeyboardInterrupt:
            self.status = "interrupted"
            raise
        except BaseException as exc:
            self.status, self.stop_detail = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._save_wall()
            self._set_run_meta()
        return self.summary()

    def _set_run_meta(self) -> None:
        self.archive.set_meta(
            "run",
            {"status": self.status, "detail": self.stop_detail, "pid": os.getpid(),
             "host": socket.gethostname(), "updated": time.time()},
        )  # fmt: skip

    def stop(self, detail: str) -> None:
        if self.status == "running":
            self.status, self.stop_detail = "stopped", detail

    def elapsed(self) -> float:
        return self._wall_before + time.monotonic() - self._started

    def _save_wall(self) -> None:
        self.archive.set_meta("wall_s", self.elapsed())
        self._wall_before, self._started = self.elapsed(), time.monotonic()

    def _seed(self) -> None:
        seed = self.seed_variant
        if not self.archive.has(seed.id):
            try:
                seed.load_spec()
            except ConfigError as exc:
                raise ConfigError(f"the seed variant does not load: {exc.message}") from exc
            self.archive.add(ArchiveEntry(variant_id=seed.id, description="seed"), seed)
            self.archive.set_meta("seed_id", seed.id)
        entry = self.archive.entry(seed.id)
        if entry.status in ("pending", "evaluating"):
            self.archive.update(seed.id, status="evaluating")
            self._score(seed, self.order)
            if self.status != "running":
                return
            failed = [r for r in self.archive.scores(seed.id, "select").values() if r.error]
            if failed:
                self.archive.update(seed.id, status="failed", reason=failed[0].error)
                raise ConfigError(f"the seed variant does not work: {failed[0].error}")
            self.archive.update(seed.id, status="accepted", stage=self.plan.last)
        if self.config.harvest and self.status == "running":
            self.ctx.run_feedback(seed, self.ctx.feedback[: self.config.harvest])

    def _generation(self, g: int) -> None:
        done = {a.slot for a in self.archive.attempts(g)}
        done |= {e.slot for e in self.archive.entries() if e.generation == g}
        if len(done & set(range(self.config.children))) < self.config.children:
            population = self.population(g - 1)
            parents = self.selector.select(
                population, self.config.children, random.Random(f"{self.config.seed}:select:{g}")
            )
            history = self.history(g - 1)
            for slot, parent_id in enumerate(parents):
                if slot in done or self.status != "running":
                    continue
                make_child(self, g, slot, parent_id, history)
        every = self.config.finetune_every
        slot = self.config.children  # one slot more: the policy child
        due = self.finetune is not None and every and g % every == 0 and slot not in done
        if due and self.status == "running":
            self.finetune.generation = g  # type: ignore[union-attr]
            best = max(self.population(g - 1), key=lambda c: (c.eligible, c.score))
            make_child(self, g, slot, best.variant_id, self.history(g - 1), forced=self.finetune)
        children = [
            e for e in self.archive.entries()
            if e.generation == g and e.status in ("pending", "evaluating")
        ]  # fmt: skip
        evaluate_staged(self, children)
        self._progress(f"generation {g} done")

    # --- scoring ---------------------------------------------------------------------

    def _score(self, variant: Variant, tasks: list[Task]) -> None:
        self.score_many([variant], tasks)

    def score_many(self, variants: list[Variant], tasks: list[Task], split: str = "select") -> None:
        """Score every variant on every task, recorded under ``split`` in the archive."""
        pairs = [(v, t) for v in variants for t in tasks]
        for result in self.evaluator.evaluate(pairs, gate=self.gate):
            self.archive.record_score(result, split=split, fresh=not result.cached)
            self._progress(f"{result.variant_id} {result.task_id}: {_verdict(result)}")

    # --- views -----------------------------------------------------------------------

    def population(self, upto: int) -> list[Candidate]:
        """The selectors' view of the archive as it stood after generation ``upto``. With
        ``parents="valid"`` a child rejected at a gate is eligible too (its score is its mean
        on the tasks it was scored on); failed children never are."""
        entries = [e for e in self.archive.entries() if e.generation <= upto]
        keep = {e.variant_id for e in entries}
        members = [c for c in self.archive.candidates() if c.variant_id in keep]
        if self.config.parents == "valid":
            rejected = {e.variant_id for e in entries if e.status == "rejected"}
            for c in members:
                c.eligible = c.eligible or c.variant_id in rejected
        counts: dict[str, int] = {}
        for c in members:
            if c.parent_id is not None:
                counts[c.parent_id] = counts.get(c.parent_id, 0) + 1
        for c in members:
            c.children = counts.get(c.variant_id, 0)
        return members

    def history(self, upto: int) -> list[Use]:
        """Operator uses of generations <= ``upto`` (``choice.uses``)."""
        return uses(self.archive, upto)

    def _final_test(self) -> None:
        best = self.archive.best()
        seed_id = self.archive.meta("seed_id")
        if best is None or seed_id is None:
            return
        self.testing = True  # the held-out scoring is not stopped by the budget
        try:
            ids = sorted({best.variant_id, seed_id})
            self.score_many([self.archive.variant(i) for i in ids], self.test, split="test")
        finally:
            self.testing = False
        a = {t: r.reward for t, r in self.archive.scores(seed_id, "test").items() if not r.error}
        b = {t: r.reward for t, r in self.archive.scores(best.variant_id, "test").items()
             if not r.error}  # fmt: skip
        report: dict[str, Any] = {
            "best": best.variant_id,
            "seed": seed_id,
            "split": self.config.test_split,
            "n_tasks": len(self.test),
        }
        if a and b:
            report["comparison"] = paired_bootstrap(a, b, seed=self.config.seed)
        self.archive.set_meta("final", report)

    def _progress(self, note: str) -> None:
        if time.monotonic() - self._last_wall_save > 10:
            self._save_wall()
            self._last_wall_save = time.monotonic()
        spend = self.archive.spend()
        best = self.archive.best()
        self.on_progress(
            EvolveProgress(
                generation=self.generation,
                generations=self.config.generations,
                archive_size=len(self.archive.entries()),
                best_score=best.score if best else 0.0,
                evaluations=spend["evaluations"],
                cached=spend["cached"],
                cost_usd=spend["cost_usd"],
                tokens=spend["tokens"],
                elapsed_s=self.elapsed(),
                note=note,
            )
        )

    def summary(self) -> dict[str, Any]:
        entries = self.archive.entries()
        best = self.archive.best()
        by_status: dict[str, int] = {}
        for e in entries:
            by_status[e.status] = by_status.get(e.status, 0) + 1
        return {
            "archive": self.archive.name,
            "status": self.status,
            "stop_detail": self.stop_detail,
            "generations_done": max((e.generation for e in entries), default=0),
            "entries": len(entries),
            "by_status": by_status,
            "best": best.model_dump(mode="json", by_alias=True) if best else None,
            "seed": self.archive.meta("seed_id"),
            "spend": self.archive.spend(),
            "wall_s": round(self.elapsed(), 3),
            "final": self.archive.meta("final"),
        }


def _verdict(result: TaskResult) -> str:
    if result.error:
        return result.error.splitlines()[0]
    return ("passed" if result.passed else "failed") + (" (cached)" if result.cached else "")
