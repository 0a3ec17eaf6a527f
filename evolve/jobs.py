"""One evaluation attempt as evolve runs it: the engine's ``run_job``, with what a variant
does turned into that variant's result instead of the run's end.

``guarded_run_job(job)`` runs ``exapt.engine.run_job`` and returns its ``Attempt``, except:

- the agent raised (a prompt that does not render, a graph option of the wrong type...):
  an ``Attempt`` with reward 0 whose trajectory says ``crash: ...`` in
  ``metadata["evolve_error"]`` — the variant's fault, its result;
- a model or sandbox failure (``ModelError``, ``SandboxError``...) or a scorer that could not
  run the tests (``Score.error``): raised as an ``ExaptError``, which the engine treats as
  fatal for the evaluation (the evolution stops, resumable).

``NamedJob`` / ``run_named_job`` are the same attempt with the model, suite and sandbox named
by strings, for executors in other processes (Ray): each process resolves a model and a
suite once and shares them.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from functools import cache
from typing import Any

from exapt.errors import ConfigError, ExaptError
from exapt.records import Outcome, Score, Trajectory

#: Where a crash or a hang is written on the attempt's trajectory.
ERROR_KEY = "evolve_error"


class ScoringFailed(ExaptError):
    """The scorer's sandbox broke: no verdict on the variant (fatal for the evaluation)."""


def failed_attempt(job: Any, error: str, started: float | None = None) -> Any:
    """The ``Attempt`` of a job whose agent crashed or hung: reward 0, the reason recorded."""
    from exapt.agents import Attempt

    trajectory = Trajectory(
        run_id=job.run_id,
        task_id=job.task.id,
        trial=job.trial,
        variant_id=job.spec.variant_id(),
        model=getattr(job.model, "name", str(job.model)),
        result=Outcome(reward=0.0, passed=False, error=error, stop_reason=error.split(":")[0]),
        wall_s=time.monotonic() - started if started else 0.0,
        metadata={ERROR_KEY: error, "spec": job.spec.name},
    )
    score = Score(reward=0.0, passed=False, feedback=error[:2000])
    return Attempt(trajectory=trajectory, score=score, workspace={})


def guarded_run_job(job: Any) -> Any:
    """``exapt.engine.run_job`` with the variant's failures as its results (module doc)."""
    from exapt.agents.models.base import ModelError
    from exapt.engine import run_job

    started = time.monotonic()
    try:
        attempt = run_job(job)
    except ModelError:
        raise
    except ConfigError as exc:  # e.g. a prompt that uses an unknown variable
        return failed_attempt(job, f"crash: {exc.message}", started)
    except ExaptError:  # sandbox failures and the like: not the variant's doing
        raise
    except Exception as exc:  # the agent raised: the variant crashed
        tail = "".join(traceback.format_exception(exc)[-3:])
        return failed_attempt(job, f"crash: {type(exc).__name__}: {exc}\n{tail}"[:2000], started)
    if attempt.score.error is not None:
        raise ScoringFailed(f"scoring failed on {job.task.id}: {attempt.score.error}")
    return attempt


@dataclass(frozen=True)
class NamedJob:
    """An ``AttemptJob`` by names, to run in another process."""

    task: Any  # Task
    trial: int
    spec: Any  # AgentSpec
    model: str
    api_base: str | None
    suite: str
    backend: str
    run_id: str
    budget: Any = None  # Budget | None


_MODELS: dict[tuple[str, str | None], Any] = {}
_MODELS_LOCK = threading.Lock()


def resolve(model: str, api_base: str | None) -> Any:
    """The model named ``model``, one per process (its server and client are shared)."""
    with _MODELS_LOCK:
        key = (model, api_base)
        if key not in _MODELS:
            from exapt.engine.resolve import resolve_model_name

            _MODELS[key] = resolve_model_name(model, api_base)
        return _MODELS[key]


@cache
def suite(name: str) -> Any:
    from exapt.tasks import load_suite

    return load_suite(name)


def run_named_job(job: NamedJob) -> Any:
    """Resolve the names of ``job`` in this process and run it (``guarded_run_job``)."""
    from exapt.engine import AttemptJob
    from exapt.tasks import suite_sandbox_factory

    the_suite = suite(job.suite)
    return guarded_run_job(
        AttemptJob(
            task=job.task,
            trial=job.trial,
            spec=job.spec,
            model=resolve(job.model, job.api_base),
            suite=the_suite,
            sandbox=suite_sandbox_factory(the_suite, job.backend),
            run_id=job.run_id,
            budget=job.budget,
        )
    )
