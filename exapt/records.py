"""The records every layer exchanges: ``Task``, ``Score``, ``ExecResult``, ``Step``,
``Outcome`` and ``Trajectory`` (pydantic, JSON-serialisable, versioned by ``schema``).

This module is the leaf of the import graph: it imports nothing of exapt but its errors,
so sandbox, tasks, tools, memory, agents and evolve may all use it (DESIGN.md, "Who may
import whom"; checked by the import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Schema version of ``Trajectory`` records (stored with every trajectory).
SCHEMA_VERSION = 1


class ExecResult(BaseModel):
    """What one command did. ``exit_code`` is -N (or 128+N) when killed by signal N."""

    schema_version: int = Field(1, alias="schema")
    model_config = ConfigDict(populate_by_name=True)

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    oom_killed: bool = False
    truncated: bool = False
    duration_s: float = 0.0
    backend: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


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


StepKind = Literal["model", "tool", "score", "note"]


class Step(BaseModel):
    """One thing that happened. For ``model``: ``input`` = {"messages": [...], "tools": [...]}
    or {"prompt": ...}, ``output`` = the reply as an OpenAI message. For ``tool``: ``input`` =
    {"name", "arguments", "id"}, ``output`` = the observation text."""

    kind: StepKind
    input: Any = None
    output: Any = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    started_at: float = Field(default_factory=time.time)


class Outcome(BaseModel):
    """How the attempt ended: the scorer's verdict and why the agent stopped."""

    reward: float = 0.0
    passed: bool = False
    error: str | None = None
    feedback: str = ""
    stop_reason: str = ""  # submitted | done | max_steps | max_tokens | max_cost | max_wall |
    # context_window | workspace_too_large | snapshot_failed | score_failed
    trusted: bool | None = Field(
        None, description="trusted_pass(score) when scored; None in records made before"
    )


def trusted_pass(score: Score) -> bool:
    """Whether a pass may be learned from (skills, insights, training data): the one place
    that rule lives. For now: passed, and the scorer ran the tests without an error."""
    return score.passed and score.error is None


class Trajectory(BaseModel):
    """Everything one attempt did: every model call, tool call and observation, the totals,
    and the scorer's outcome. ``exapt.memory.trajectories.TrajectoryStore`` stores them."""

    model_config = ConfigDict(populate_by_name=True)

    schema_version: int = Field(SCHEMA_VERSION, alias="schema")
    run_id: str
    task_id: str
    trial: int = 0
    variant_id: str = ""
    model: str = ""
    steps: list[Step] = Field(default_factory=list)
    result: Outcome = Field(default_factory=Outcome)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        self.tokens_in += step.tokens_in
        self.tokens_out += step.tokens_out
        self.cost_usd += step.cost_usd
        return step
