"""One evaluation job: a variant's files, a task, a model name -> the scored attempt.

``run_job`` is a top-level function of picklable records so that any executor can run it
(a thread here, a Ray worker elsewhere). It resolves the model, the suite and the variant's
spec once per process, runs ``exapt.agents.run_task`` (memory off: an evaluation must
depend only on its cache key) and returns the trajectory and score, or why it could not:

- ``crash``: the variant's agent raised (a prompt that does not render, a graph option of
  the wrong type...): the variant's fault, its result;
- ``infra``: a model or sandbox failure (``ModelError``, ``SandboxError``,
  ``UnavailableError``, a scorer that could not run the tests): not the variant's fault;
  the evolution stops (resumable).

Pre-engine wiring: this calls ``run_task`` directly and ``exapt.runs.resolve_model_name``;
when the run engine lands, its attempt function replaces the body.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from functools import cache
from typing import Any

from exapt.errors import ConfigError, ExaptError
from exapt.evolve.variant import Variant
from exapt.records import Score, Task, Trajectory


@dataclass(frozen=True)
class Job:
    variant_files: dict[str, bytes]
    variant_id: str
    task: Task
    suite: str
    model: str
    api_base: str | None
    backend: str
    run_id: str
    budget: Any = None  # exapt.agents.Budget | None


@dataclass
class JobOutcome:
    trajectory: Trajectory | None = None
    score: Score | None = None
    crash: str | None = None
    infra: str | None = None


_MODELS: dict[tuple[str, str | None], Any] = {}
_MODELS_LOCK = threading.Lock()


def resolve(model: str, api_base: str | None) -> Any:
    """The model named ``model``, one per process (its server and client are shared)."""
    with _MODELS_LOCK:
        key = (model, api_base)
        if key not in _MODELS:
            from exapt.runs import resolve_model_name

            _MODELS[key] = resolve_model_name(model, api_base)
        return _MODELS[key]


@cache
def suite(name: str) -> Any:
    from exapt.tasks import load_suite

    return load_suite(name)


def run_job(job: Job) -> JobOutcome:
    """Run one job (see the module docstring); never raises for what the variant does."""
    from exapt.agents import run_task
    from exapt.agents.models.base import ModelError
    from exapt.tasks import suite_sandbox_factory

    try:
        spec = Variant(job.variant_files).load_spec()
    except ConfigError as exc:
        return JobOutcome(crash=f"load: {exc.message}")
    try:
        model = resolve(job.model, job.api_base)
        the_suite = suite(job.suite)
    except ExaptError as exc:
        return JobOutcome(infra=f"{type(exc).__name__}: {exc}")
    try:
        attempt = run_task(
            job.task,
            spec=spec,
            model=model,
            sandbox=suite_sandbox_factory(the_suite, job.backend),
            scorer=the_suite.scorer(),
            run_id=job.run_id,
            budget=job.budget,
        )
    except ModelError as exc:
        return JobOutcome(infra=f"{type(exc).__name__}: {exc}")
    except ConfigError as exc:  # e.g. a prompt that uses an unknown variable
        return JobOutcome(crash=f"crash: {exc.message}")
    except ExaptError as exc:  # sandbox failures and the like: not the variant's doing
        return JobOutcome(infra=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # the agent raised: the variant crashed
        tail = "".join(traceback.format_exception(exc)[-3:])
        return JobOutcome(crash=f"crash: {type(exc).__name__}: {exc}\n{tail}"[:2000])
    if attempt.score.error is not None:  # the scorer's sandbox broke: no verdict on the variant
        return JobOutcome(infra=f"scoring failed on {job.task.id}: {attempt.score.error}")
    return JobOutcome(trajectory=attempt.trajectory, score=attempt.score)
