"""``evaluate``: one call from (spec, tasks, model) to scored, stored attempts — the entry
point for scripts and for evolve's staged evaluation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from exapt.agents import Attempt
from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.engine.config import RunBudget
from exapt.engine.engine import AttemptCache, Engine, Evaluation
from exapt.engine.executor import Executor, LocalExecutor
from exapt.engine.resolve import check_backend
from exapt.engine.state import Progress, Target
from exapt.errors import ExaptError
from exapt.memory.base import AgentMemory
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Task
from exapt.tasks import SandboxFactory, Suite, suite_sandbox_factory


class EvaluationFailed(ExaptError):
    """The evaluation ended ``failed`` (a ``ModelError``, a broken sandbox...). What was
    stored stays stored; ``evaluation`` holds it, and a rerun with the same ``run_id``
    resumes."""

    def __init__(self, evaluation: Evaluation) -> None:
        super().__init__(
            f"evaluation {evaluation.run_id} failed: {evaluation.error}",
            hint=f"evaluate again with run_id={evaluation.run_id!r} to resume",
        )
        self.evaluation = evaluation


def evaluate(
    spec: AgentSpec | None,
    tasks: Sequence[Task],
    model: Model,
    *,
    suite: Suite,
    sandbox: SandboxFactory | None = None,
    backend: str | None = None,
    run_id: str | None = None,
    trials: int = 1,
    workers: int = 1,
    memory: AgentMemory | None = None,
    budget: RunBudget | None = None,
    cache: AttemptCache | None = None,
    store: TrajectoryStore | None = None,
    executor: Executor | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[Attempt]:
    """Run ``spec`` (None: the default agent for ``model``) on ``tasks``, scored by
    ``suite``'s scorer, and return this session's attempts (each stored in ``store``, by
    default the home folder's, under ``run_id``, a new one by default; an existing one
    resumes). Sandboxes come from ``sandbox``, else from ``backend`` (None: the best
    available) with the suite's limits. A budget stop returns what was done; a failure
    raises ``EvaluationFailed``; Ctrl-C raises ``KeyboardInterrupt`` once attempts stopped.

    Example:
        attempts = evaluate(load_spec("tool_coder"), tasks, model, suite=suite, workers=4)
        scores = {a.task_id: a.score for a in attempts}
    """
    factory = sandbox or suite_sandbox_factory(suite, check_backend(backend))
    target = Target(model=model, suite=suite, sandbox=factory, spec=spec, memory=memory)
    own_store = store is None
    used = store if store is not None else TrajectoryStore()
    try:
        engine = Engine(used, executor or LocalExecutor(workers))
        result = engine.evaluate(
            target, list(tasks), run_id=run_id, trials=trials, budget=budget, cache=cache,
            on_progress=on_progress,
        )  # fmt: skip
    finally:
        if own_store:
            used.close()
    if result.status == "failed":
        raise EvaluationFailed(result)
    if result.status == "interrupted":
        raise KeyboardInterrupt
    return result.attempts
