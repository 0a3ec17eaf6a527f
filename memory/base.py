"""What an agent asks of long-term memory, what memory is told after an attempt, and what
memory needs from its caller.

The runner calls ``recall`` before an attempt (what goes into the prompt and the workspace);
the run engine calls ``learn`` after the attempt is scored *and stored* (a reflection on
failure, skill proposals and insights on a trusted pass). Agents depend only on this
protocol; ``memory/`` implements it with Chroma.

Memory is a store, not a caller: it imports neither agents nor tasks. What it needs from
them comes in as plain callables defined here:

- a ``Writer`` (``prompt -> text``) writes reflections and insight operations; the engine
  makes one from a chat model (``exapt.agents.writer.text_writer``);
- a ``SkillCheck`` (``(code, tests) -> Check``) decides whether a skill's tests pass; the
  engine wires it to a sandbox and a judge the skill cannot reach.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from exapt.records import Score, Task, Trajectory

#: Writes text for a prompt (a lesson, insight operations). Raises an ``ExaptError`` when it
#: cannot (model down, out of budget): memory then falls back to what it can do alone.
Writer = Callable[[str], str]


@dataclass
class Check:
    """A verdict on a skill: ``ok`` and why (the first failure, or how many tests passed)."""

    ok: bool
    reason: str = ""


#: Runs ``tests`` (Python ``assert`` statements) against the module ``code`` where it can do
#: no harm and returns the verdict. Never raises for what the code does (that is a failed
#: ``Check``); raises ``ExaptError`` only when the place it runs in is broken.
SkillCheck = Callable[[str, list[str]], Check]


class Recollection(BaseModel):
    """Memory retrieved for one attempt, ready to be rendered into the agent's prompt."""

    reflections: list[str] = Field(default_factory=list, description="lessons from past failures")
    skills: list[str] = Field(
        default_factory=list,
        description="signatures + docstrings of skills importable from skills.py",
    )
    insights: list[str] = Field(default_factory=list, description="rules distilled across tasks")
    files: dict[str, str] = Field(
        default_factory=dict, description="files added to the workspace, e.g. skills.py"
    )
    ids: list[str] = Field(
        default_factory=list, description="ids of the items retrieved (usage tracking)"
    )


@runtime_checkable
class AgentMemory(Protocol):
    """Long-term memory as the runner and the engine see it. ``recall`` is best-effort: it
    raises only for a broken store, never because nothing relevant was found. ``learn`` may
    raise (a store that is down): the engine has stored the attempt before and logs the
    failure on it."""

    def recall(self, task: Task, *, variant_id: str = "", model: str = "") -> Recollection: ...

    def learn(
        self, task: Task, trajectory: Trajectory, score: Score, workspace: dict[str, bytes]
    ) -> None:
        """Store what this scored attempt teaches. ``workspace`` is the agent's final
        workspace; ``task`` is the whole task (memory uses ``hidden`` only to keep hidden
        test text out of what it stores)."""
        ...
