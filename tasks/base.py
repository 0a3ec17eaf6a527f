"""The nouns of evaluation: ``Task``, ``Score``, and the ``Suite`` / ``Scorer`` protocols.

A ``Task`` seeds a workspace with ``files`` and keeps what the agent must never see in
``hidden`` (tests, reference solutions). A scorer runs the hidden tests on a snapshot of
the agent's final workspace in a *fresh* sandbox the agent never touched: the evaluator is
out of the agent's reach.

Score direction: ``reward`` in [0, 1], higher is better; ``passed`` is True only with
positive evidence that every hidden test ran and passed (``Score.evidence``: ``judge`` or
``report``; never an exit status alone). A scorer never raises for what the solution does
(a crash, an early exit, a timeout): that is a reward of 0 with ``failure`` and
``feedback`` saying why, the feedback holding no hidden test text. It raises only for
broken input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from exapt.records import Score, Task
from exapt.sandbox.base import Sandbox

__all__ = ["SandboxFactory", "Score", "Scorer", "Suite", "Task"]


#: Opens a fresh sandbox seeded with files: ``factory(files) -> Sandbox``.
SandboxFactory = Callable[[dict[str, str | bytes]], Sandbox]


@runtime_checkable
class Scorer(Protocol):
    """Scores a finished workspace against a task's hidden tests in a fresh sandbox."""

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score: ...


@runtime_checkable
class Suite(Protocol):
    """A named, ordered collection of tasks with the scorer that judges them."""

    name: str

    def tasks(self) -> Iterator[Task]: ...

    def scorer(self) -> Scorer: ...
