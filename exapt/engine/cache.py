"""``StoreCache``: attempts reused from the trajectory store, keyed by what makes an attempt
the same — the variant (the spec's content hash), the task, the model and the trial."""

from __future__ import annotations

from exapt.agents import Attempt
from exapt.agents.spec import AgentSpec
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Score, Task, Trajectory


class StoreCache:
    """An ``AttemptCache`` over a ``TrajectoryStore``: the latest stored attempt of the same
    (variant id, task id, model, trial), from any run but ``exclude_run``.

    Only results are reused: an attempt made with memory on depends on what memory held
    then, so give a cache only to evaluations that compare variants on equal terms.

    Example:
        engine.evaluate(target, tasks, run_id="g2", cache=StoreCache(store))
    """

    def __init__(self, store: TrajectoryStore, *, exclude_run: str | None = None) -> None:
        self.store = store
        self.exclude_run = exclude_run

    def lookup(self, spec: AgentSpec, task: Task, model: str, trial: int) -> Attempt | None:
        found = self.store.find_attempt(
            spec.variant_id(), task.id, model, trial, exclude_run=self.exclude_run
        )
        if found is None:
            return None
        return Attempt(trajectory=found, score=stored_score(found), workspace={}, cached=True)


def stored_score(trajectory: Trajectory) -> Score:
    """The ``Score`` a stored attempt was given (its ``score`` step), else rebuilt from its
    outcome (attempts stored without steps)."""
    for step in reversed(trajectory.steps):
        if step.kind == "score" and isinstance(step.output, dict):
            return Score.model_validate(step.output)
    r = trajectory.result
    return Score(reward=r.reward, passed=r.passed, feedback=r.feedback, error=r.error)
