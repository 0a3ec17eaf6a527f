"""The nouns of evaluation: ``Task``, ``Score``, and the ``Suite`` / ``Scorer`` protocols.

A ``Task`` seeds a workspace with ``files`` and keeps what the agent must never see in
``hidden`` (tests, reference solutions). A scorer runs the hidden tests on a snapshot of
the agent's final workspace in a *fresh* sandbox the agent never touched: the evaluator is
out of the agent's reach.

Score direction: ``reward`` in [0, 1], higher is better; ``passed`` is True only when every
hidden test passed. A scorer never raises for what the solution does (a crash, a timeout):
that is a reward of 0 with ``feedback`` saying why. It raises only for broken input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from exapt.sandbox.base import Sandbox


class Task(BaseModel):
    """One problem: an instruction and a workspace seed; ``hidden`` is scorer-only."""

    model_config = ConfigDict(populate_by_name=True)

    schema_version: int = Field(1, alias="schema")
    id: str
    suite: str
    instruction: str
    files: dict[str, str] = Field(default_factory=dict, description="workspace seed, path -> text")
    hidden: dict[str, Any] = Field(
        default_factory=dict, description="scorer data; never shown to the agent"
    )
    language: str = "python"
    metadata: dict[str, Any] = Field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """What an agent may see: everything but ``hidden``."""
        return self.model_dump(exclude={"hidden"})


class Score(BaseModel):
    """The scorer's verdict on one attempt."""

    reward: float = Field(ge=0.0, le=1.0)
    passed: bool
    feedback: str = Field("", description="what the tests said, cut to a readable size")
    error: str | None = Field(None, description="why scoring could not run the tests, if so")
    duration_s: float = 0.0


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
