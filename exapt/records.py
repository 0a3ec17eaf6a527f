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


#: What a verdict rests on (``Score.evidence``).
Evidence = Literal["judge", "report", "none"]


class Score(BaseModel):
    """The scorer's verdict on one attempt.

    ``passed`` is True only with positive evidence that every hidden test ran and passed
    (never an exit status alone); ``evidence`` says what that evidence is:

    - ``"judge"``: counted by a judge the solution could not reach (the Python judge: the
      tests ran in another process, the solution's answers came as plain data; for web
      tasks, the browser environment's own reading of the task's reward, which no agent
      action can write);
    - ``"report"``: the test framework's own structured report, with the number and names
      of the tests the host counted in the task's test files; the framework runs in the
      solution's process (compiled languages, JavaScript), so code that sets out to forge
      that report could (see README, Threat model);
    - ``"none"``: no evidence the tests ran (a failure, or the tests could not run).

    Learn from an attempt (skills, insights, training data) only if ``trusted``.
    ``feedback`` holds only what the agent may see: the verdict and counts, the visible
    checks, never hidden test text nor anything the solution printed during hidden tests.
    """

    reward: float = Field(ge=0.0, le=1.0)
    passed: bool
    feedback: str = Field("", description="the verdict and visible checks, no hidden test text")
    error: str | None = Field(None, description="why scoring could not run the tests, if so")
    duration_s: float = 0.0
    evidence: Evidence = Field("none", description="what the verdict rests on (see above)")
    tests_expected: int | None = Field(None, description="hidden tests the host counted")
    tests_passed: int | None = Field(None, description="hidden tests seen passing")
    failure: str | None = Field(
        None,
        description="why it failed, a short code: tests_failed, import_error, missing, "
        "solution_died, timeout, oom, build_failed, no_report, count_mismatch, broken",
    )

    @property
    def trusted(self) -> bool:
        """Passed, with a verdict the solution could not have forged (``evidence == "judge"``)."""
        return self.passed and self.evidence == "judge"


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
    that rule lives: ``Score.trusted`` (passed, with the Python judge's own evidence; a
    framework report the solution's process could forge is not enough)."""
    return score.trusted and score.error is None


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
