"""Where evolve's attempts run: executors of the engine's ``Executor`` protocol
(``workers``, ``submit(AttemptJob) -> Future[Attempt]``, ``shutdown``), chosen with
``--executor local|ray[:ADDRESS]``.

Beyond the engine's own ``LocalExecutor`` they:

- hold at most ``workers`` attempts running *in all*, however many engine evaluations
  (one per variant) submit at once — the rest wait in a queue;
- give up on an attempt with no result after ``timeout_s`` (counted from its start): its
  future gets a ``hang`` attempt (reward 0, the reason recorded); a thread cannot be
  killed, so it is abandoned (a daemon: it holds no exit) and no longer counted; a Ray
  task is force-cancelled;
- run ``jobs.guarded_run_job``, so that a variant's crash is its result;
- let the evaluator ``tag`` each attempt before the engine stores it.

``shutdown`` is a no-op (the engine calls it after each evaluation while others may still
be running); ``close`` releases the executor (a Ray cluster it started stops).

Example:
    engine = Engine(store, LocalExecutor(workers=4, timeout_s=600))
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from exapt.errors import ConfigError, UnavailableError
from exapt.evolve.jobs import NamedJob, failed_attempt, guarded_run_job, run_named_job

Tag = Callable[[Any, Any], None]  # (AttemptJob, Attempt) -> None, before the engine stores


class _Scheduler:
    """The queue, the global limit, the timeouts and the tag hook; subclasses ``_launch``."""

    name = "base"

    def __init__(self, workers: int, timeout_s: float = 1800.0) -> None:
        self._workers = max(1, workers)
        self.timeout_s = timeout_s
        self.tag: Tag | None = None
        self._lock = threading.RLock()  # Ray may resolve a future inside _launch
        self._queue: deque[tuple[Any, Future[Any]]] = deque()
        self._running: dict[Future[Any], tuple[Any, float, Any]] = {}
        self._watchdog: threading.Thread | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, job: Any) -> Future[Any]:
        outer: Future[Any] = Future()
        outer.set_running_or_notify_cancel()
        with self._lock:
            self._queue.append((job, outer))
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog = threading.Thread(
                    target=self._watch, name="evolve-watchdog", daemon=True
                )
                self._watchdog.start()
        self._pump()
        return outer

    def shutdown(self, *, wait: bool = True) -> None:
        """A no-op: other evaluations may still use this executor (see ``close``)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> _Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------

    def _pump(self) -> None:
        while True:
            with self._lock:
                if not self._queue or len(self._running) >= self._workers:
                    return
                job, outer = self._queue.popleft()
                started = time.monotonic()
                self._running[outer] = (job, started, None)  # before: it may finish at once
                try:
                    handle = self._launch(job, outer)
                except BaseException as exc:
                    self._running.pop(outer, None)
                    outer.set_exception(exc)
                    continue
                if outer in self._running:
                    self._running[outer] = (job, started, handle)

    def _launch(self, job: Any, outer: Future[Any]) -> Any:
        raise NotImplementedError

    def _cancel(self, handle: Any) -> None:
        pass

    def _finish(
        self, outer: Future[Any], result: Any = None, exc: BaseException | None = None
    ) -> None:
        """Resolve ``outer`` once (a late result of an abandoned job is dropped)."""
        with self._lock:
            entry = self._running.pop(outer, None)
        if entry is None or outer.done():
            return
        job = entry[0]
        if exc is None and self.tag is not None:
            try:
                self.tag(job, result)
            except Exception as tag_exc:  # a broken hook must not hang the engine
                exc = tag_exc
        if exc is not None:
            outer.set_exception(exc)
        else:
            outer.set_result(result)
        self._pump()

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                late = [(f, j, s, h) for f, (j, s, h) in self._running.items()
                        if now - s > self.timeout_s]  # fmt: skip
                idle = not self._running and not self._queue
            for outer, job, started, handle in late:
                self._cancel(handle)
                error = f"hang: no result after {self.timeout_s:.0f} s"
                self._finish(outer, failed_attempt(job, error, started))
            if idle:
                with self._lock:
                    if not self._running and not self._queue:
                        self._watchdog = None
                        return


class LocalExecutor(_Scheduler):
    """Attempts in daemon threads of this process (the model client, memory and sandbox
    factories need not be picklable)."""

    name = "local"

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 1800.0,
        *,
        runner: Callable[[Any], Any] = guarded_run_job,
    ) -> None:
        super().__init__(workers, timeout_s)
        self.runner = runner  # what runs one AttemptJob (tests wrap it to count or stall)

    def _launch(self, job: Any, outer: Future[Any]) -> Any:
        def target() -> None:
            try:
                result = self.runner(job)
            except BaseException as exc:
                self._finish(outer, exc=exc)
                return
            self._finish(outer, result)

        thread = threading.Thread(target=target, name="evolve-attempt", daemon=True)
        thread.start()
        return thread


class RayExecutor(_Scheduler):
    """Attempts as Ray tasks (one CPU each), named by strings (``jobs.NamedJob``): each
    worker process resolves the model and the suite itself. ``address`` None starts a
    local cluster in this process (``num_cpus`` = ``workers``); ``auto`` or
    ``ray://HOST:PORT`` joins one. Workers inherit ``EXAPT_HOME`` and the offline
    settings. ``configure`` names the model, suite and sandbox backend of the run.

    With ``--model local`` each Ray worker starts its own local model server; serve the
    model once (or use a hosted one) and pass it as a litellm string with ``--api-base``.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, *, workers: int | None = None, timeout_s: float = 1800.0
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise UnavailableError(
                "the Ray executor needs ray", hint="pip install 'exapt[ray]'"
            ) from exc
        self._ray = ray
        env = {
            k: v
            for k, v in os.environ.items()
            if k.startswith("EXAPT_") or k in ("HF_HUB_OFFLINE", "LITELLM_LOCAL_MODEL_COST_MAP")
        }
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "runtime_env": {"env_vars": env},
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, **options)
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        super().__init__(workers or cpus, timeout_s)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_named_job)
        self._names: dict[str, Any] = {}

    def configure(self, *, model: str, api_base: str | None, suite: str, backend: str) -> None:
        self._names = {"model": model, "api_base": api_base, "suite": suite, "backend": backend}

    def _launch(self, job: Any, outer: Future[Any]) -> Any:
        if not self._names:
            raise ConfigError("RayExecutor.configure(model=, suite=, backend=) was not called")
        names = {**self._names, "model": getattr(job.model, "name", self._names["model"])}
        if str(names["model"]).startswith("policy:"):  # a policy child: no api_base applies
            names["api_base"] = None
        named = NamedJob(task=job.task, trial=job.trial, spec=job.spec, run_id=job.run_id,
                         budget=job.budget, **names)  # fmt: skip
        ref = self._remote.remote(named)
        inner: Future[Any] = ref.future()

        def done(f: Future[Any]) -> None:
            exc = f.exception()
            self._finish(outer, None if exc else f.result(), exc)

        inner.add_done_callback(done)
        return ref

    def _cancel(self, handle: Any) -> None:
        self._ray.cancel(handle, force=True)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def make_executor(spec: str, *, workers: int, timeout_s: float = 1800.0) -> _Scheduler:
    """``local`` or ``ray[:ADDRESS]`` (``ray`` alone starts a local cluster)."""
    kind, _, address = spec.partition(":")
    if kind == "local" and not address:
        return LocalExecutor(workers, timeout_s)
    if kind == "ray":
        return RayExecutor(
            address or None, workers=workers if not address else None, timeout_s=timeout_s
        )
    raise ConfigError(
        f"unknown executor {spec!r}", hint="use local, ray (a local cluster) or ray:ADDRESS"
    )
