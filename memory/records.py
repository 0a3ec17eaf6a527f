"""Records of what an agent did: ``Step``, ``Outcome`` and ``Trajectory`` (JSON, versioned).

A trajectory holds every model call (messages in, reply out, tokens, cost), every tool call
and its observation, with timings, and the scorer's outcome. ``memory/trajectories.py``
stores them; fine-tuning exports them as OpenAI chat data.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

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
    stop_reason: str = (
        ""  # submitted | done | max_steps | max_tokens | max_cost | max_wall | context_window
    )


class Trajectory(BaseModel):
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
