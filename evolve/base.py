"""The nouns of evolution: ``Evaluator``, ``Selector``, ``Operator`` and the records they pass.

One generation reads: select parents -> mutate (an operator proposes a child) -> evaluate
in stages -> accept or reject -> archive. Scores: ``reward`` in [0, 1], higher is better;
a variant's ``score`` is its mean reward over the tasks it was scored on.

Example:
    evaluator.evaluate([(child, task) for task in stage_tasks], gate=gate)  # -> TaskResults
    selector.select(population, k=2, rng=rng)                               # -> variant ids
    operator.propose(parent, ctx, rng)                                       # -> Proposal | None
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from exapt.evolve.variant import Variant

if TYPE_CHECKING:
    from exapt.agents.budget import Budget
    from exapt.records import Task, Trajectory

#: Schema version of evolve's records (archive entries, task results, cache rows).
EVOLVE_SCHEMA = 1


class TaskResult(BaseModel):
    """One variant scored on one task: the scorer's verdict, what it cost, where its
    trajectory is stored (``run_id``, ``task_id``, ``trial`` in the trajectory store).

    ``error`` is set when the attempt could not be made as asked: ``load: ...`` (the
    variant does not load), ``crash: ...`` (the agent raised), ``hang: ...`` (no result in
    time). Such a result has reward 0 and is never cached."""

    schema_version: int = Field(default=EVOLVE_SCHEMA, alias="schema")
    variant_id: str
    task_id: str
    reward: float = 0.0
    passed: bool = False
    feedback: str = ""
    error: str | None = None
    stop_reason: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    wall_s: float = 0.0
    run_id: str = ""
    trial: int = 0
    cached: bool = False
    finished: float = Field(default_factory=time.time)

    model_config = {"populate_by_name": True}


@dataclass
class Gate:
    """What an evaluator asks before it starts an attempt: may it start one, and with what
    per-attempt budget (the run's remaining budget; None = the spec's own limits)."""

    def open(self) -> bool:
        return True

    def allowance(self) -> int | None:
        """How many more attempts may start (None = no count limit)."""
        return None

    def attempt_budget(self) -> Budget | None:
        return None


@runtime_checkable
class Evaluator(Protocol):
    """Scores (variant, task) pairs with one model and seed.

    Contract: yields one ``TaskResult`` per pair it started, as each finishes (any order);
    each is durable (trajectory stored, cache written) *before* it is yielded. A pair is
    not started once ``gate.open()`` is False (so fewer results than pairs is a budget
    stop, not an error). A variant that fails to load, crashes or hangs gives results with
    ``error`` set; an infrastructure failure (model server down, provider error) raises
    ``ExaptError`` after the finished results were yielded."""

    model: str
    seed: int

    def evaluate(
        self, pairs: Sequence[tuple[Variant, Task]], *, gate: Gate | None = None
    ) -> Iterator[TaskResult]: ...


@dataclass
class Candidate:
    """An archive member as selectors see it. ``eligible``: it may be chosen as a parent
    (fully evaluated and accepted, or the seed); others are there as descendants."""

    variant_id: str
    parent_id: str | None
    generation: int
    score: float
    task_scores: dict[str, float] = field(default_factory=dict)
    children: int = 0
    eligible: bool = True


@runtime_checkable
class Selector(Protocol):
    """Chooses ``k`` parents (with repetition) among the eligible members of ``population``.
    Deterministic for a given ``rng`` state. Raises ``ValueError`` if none is eligible."""

    name: str

    def select(self, population: Sequence[Candidate], k: int, rng: random.Random) -> list[str]: ...


@dataclass
class Proposal:
    """A child an operator made: its files, what changed (for people and the report), the
    extra parents it drew from (``merge``), free text it changed (for the novelty filter)
    and what making it cost (a mutator model's calls)."""

    variant: Variant
    operator: str
    description: str
    other_parents: list[str] = field(default_factory=list)
    changed_text: str | None = None
    cost_usd: float = 0.0
    tokens: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class MutationContext(Protocol):
    """What operators may read: the archive's members and lineage, scored trajectories
    (visible feedback only), tasks of the feedback split, the mutator model."""

    def variant(self, variant_id: str) -> Variant: ...

    def population(self) -> Sequence[Candidate]: ...

    def ancestors(self, variant_id: str) -> list[str]: ...

    def failed_trajectories(self, variant: Variant, limit: int) -> list[Trajectory]: ...

    def passed_trajectories(self, variant: Variant, limit: int) -> list[Trajectory]: ...

    def task(self, task_id: str) -> Task | None: ...

    def mutator(self) -> Any: ...


@runtime_checkable
class Operator(Protocol):
    """Proposes one child of ``parent``, or None when it does not apply (nothing to change,
    no trajectories to learn from). Never evaluates; never writes the archive.
    ``ConfigError`` only for bad configuration; a mutator model's unusable reply is None
    with the reason in ``last_skip``."""

    name: str

    def propose(
        self, parent: Variant, ctx: MutationContext, rng: random.Random
    ) -> Proposal | None: ...
