"""What an evaluation knows as it goes: each task's ``TaskState``, the ``Progress`` shown to
users, and the ``Target`` being evaluated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from exapt.agents import default_spec_for
from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.memory.base import AgentMemory
from exapt.records import Task, Trajectory
from exapt.tasks import SandboxFactory, Suite


@dataclass(frozen=True)
class Target:
    """What is evaluated, and how: ``model`` driving an agent spec on ``suite``'s tasks,
    scored by the suite's scorer, in sandboxes from ``sandbox``, with ``memory`` (None =
    none). The spec of a task: ``specs[task.id]``, else ``spec``, else the default agent
    for the model (``default_spec_for``)."""

    model: Model
    suite: Suite
    sandbox: SandboxFactory
    spec: AgentSpec | None = None
    specs: Mapping[str, AgentSpec] = field(default_factory=dict)
    memory: AgentMemory | None = None

    def spec_for(self, task: Task) -> AgentSpec:
        found = self.specs.get(task.id) or self.spec
        return found if found is not None else default_spec_for(self.model, task)


@dataclass
class TaskState:
    """How one task stands: trials scored so far, and the first trial that passed."""

    trials_done: int = 0
    passed_trial: int | None = None
    reward: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    stop_reason: str = ""
    learn_errors: int = 0

    def add(self, trajectory: Trajectory) -> None:
        """Account one scored attempt of this task."""
        self.trials_done = max(self.trials_done, trajectory.trial + 1)
        if trajectory.result.passed and (
            self.passed_trial is None or trajectory.trial < self.passed_trial
        ):
            self.passed_trial = trajectory.trial
        self.reward = max(self.reward, trajectory.result.reward)
        self.tokens_in += trajectory.tokens_in
        self.tokens_out += trajectory.tokens_out
        self.cost_usd += trajectory.cost_usd
        self.wall_s += trajectory.wall_s
        self.stop_reason = trajectory.result.stop_reason
        self.learn_errors += bool(trajectory.metadata.get("learn_error"))

    def next_trial(self, trials: int) -> int | None:
        """The trial to run next, or None when the task passed or used all ``trials``."""
        if self.passed_trial is None and self.trials_done < trials:
            return self.trials_done
        return None


@dataclass
class Progress:
    """A snapshot for progress displays, passed to ``Engine.execute``'s ``on_progress``."""

    run_id: str
    n_tasks: int
    done: int
    passed: int
    tokens: int
    cost_usd: float
    elapsed_s: float
    running: int
    note: str = ""

    @property
    def pass_rate(self) -> float:
        return self.passed / self.done if self.done else 0.0
