"""What an agent asks of long-term memory, and what memory is told after an attempt.

The runner calls ``recall`` before an attempt (what goes into the prompt and the workspace)
and ``learn`` after it is scored (a reflection on failure, a skill proposal on success).
Agents depend only on this protocol; ``memory/`` implements it with Chroma.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

from exapt.records import Score, Task, Trajectory
from exapt.tasks.base import SandboxFactory


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
    """Long-term memory as the runner sees it. Both calls are best-effort for the agent:
    they raise only for a broken store, never because nothing relevant was found."""

    def recall(self, task: Task, *, variant_id: str = "", model: str = "") -> Recollection: ...

    def learn(
        self,
        task: Task,
        trajectory: Trajectory,
        score: Score,
        workspace: dict[str, bytes],
        sandbox: SandboxFactory,
    ) -> None:
        """Store what this scored attempt teaches. ``workspace`` is the agent's final
        workspace; ``sandbox`` opens fresh sandboxes (to verify a proposed skill's tests)."""
        ...
