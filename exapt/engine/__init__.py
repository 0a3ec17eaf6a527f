"""The evaluation engine: attempts of agents on tasks, run on an executor, stored the moment
they are scored, learned from after. ``exapt run`` (``Run``) and ``exapt evolve`` both use it.

- ``Engine(store, executor)``: ``evaluate(target, tasks, run_id=..., trials=..., budget=...,
  cache=...) -> Evaluation`` (``prepare`` + ``execute`` for finer control);
- ``Target``: the model, the suite (its scorer), the sandbox factory, the agent spec(s),
  memory; ``RunBudget``: limits of the whole evaluation;
- ``Executor`` protocol, ``LocalExecutor`` (threads); ``AttemptJob``/``run_job``: one attempt;
- ``AttemptCache`` protocol, ``StoreCache``: reuse attempts by (variant, task, model, trial);
- ``evaluate(spec, tasks, model, suite=...)``: the one-call form, for scripts and evolve;
- ``Run``/``RunConfig``: ``exapt run`` on top (config.json, summary.json, resume by run id).

Example:
    attempts = evaluate(load_spec("tool_coder"), tasks, model, suite=suite, workers=4)
    {a.task_id: a.score.passed for a in attempts}
"""

from __future__ import annotations

from exapt.engine.cache import StoreCache, stored_score
from exapt.engine.config import RunBudget, RunConfig, make_config, new_run_id
from exapt.engine.engine import AttemptCache, Engine, Evaluation
from exapt.engine.evaluate import EvaluationFailed, evaluate
from exapt.engine.executor import AttemptJob, Executor, LocalExecutor, run_job
from exapt.engine.run import Run
from exapt.engine.skill_check import sandbox_skill_check
from exapt.engine.state import Progress, Target, TaskState

__all__ = [
    "AttemptCache",
    "AttemptJob",
    "Engine",
    "Evaluation",
    "EvaluationFailed",
    "Executor",
    "LocalExecutor",
    "Progress",
    "Run",
    "RunBudget",
    "RunConfig",
    "StoreCache",
    "Target",
    "TaskState",
    "evaluate",
    "make_config",
    "new_run_id",
    "run_job",
    "sandbox_skill_check",
    "stored_score",
]
