"""Where attempts run: the ``Executor`` protocol, ``AttemptJob`` (one attempt as data) and
``LocalExecutor`` (a thread pool on this machine).

An executor only *runs* attempts (recall, agent, snapshot, score: ``run_job``); storing
and learning happen in the engine as results come back, so an executor on other machines
(Ray, next) needs to ship only the job and the ``Attempt`` it gives back.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from exapt.agents import Attempt, run_task
from exapt.agents.budget import Budget
from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.memory.base import AgentMemory
from exapt.records import Task
from exapt.tasks import SandboxFactory, Suite


@dataclass(frozen=True)
class AttemptJob:
    """One attempt to run: ``spec`` with ``model`` on trial ``trial`` of ``task``, scored by
    ``suite``'s scorer in sandboxes from ``sandbox``, recalling ``memory`` (None = none),
    within ``budget`` (what is left of the run's, on top of the spec's limits)."""

    task: Task
    trial: int
    spec: AgentSpec
    model: Model
    suite: Suite
    sandbox: SandboxFactory
    run_id: str
    memory: AgentMemory | None = None
    budget: Budget | None = None


def run_job(job: AttemptJob) -> Attempt:
    """Run one attempt (no store, no learning). ``ModelError`` and other infrastructure
    errors propagate: the engine decides what they mean for the run."""
    return run_task(
        job.task,
        spec=job.spec,
        model=job.model,
        sandbox=job.sandbox,
        scorer=job.suite.scorer(),
        run_id=job.run_id,
        trial=job.trial,
        memory=job.memory,
        budget=job.budget,
        learn=False,  # the engine stores the attempt first, then learns
    )


@runtime_checkable
class Executor(Protocol):
    """Runs ``AttemptJob``s, at most ``workers`` at once (the engine keeps no more in flight).

    ``submit`` returns at once with a future of the job's ``Attempt`` (or its exception).
    ``shutdown(wait=True)`` waits for running jobs and drops queued ones; the executor may be
    used again afterwards. A ``KeyboardInterrupt`` while waiting propagates.
    """

    @property
    def workers(self) -> int: ...

    def submit(self, job: AttemptJob) -> Future[Attempt]: ...

    def shutdown(self, *, wait: bool = True) -> None: ...


class LocalExecutor:
    """``workers`` threads in this process. Threads, not processes: an attempt waits on the
    model server and on sandboxed subprocesses, so the GIL is not what limits it, and the
    model client, memory and sandbox factories need not be picklable.

    Example:
        engine = Engine(store, LocalExecutor(workers=4))
    """

    def __init__(self, workers: int = 1, *, name: str = "exapt-attempt") -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, job: AttemptJob) -> Future[Attempt]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        return self._pool.submit(run_job, job)

    def shutdown(self, *, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
