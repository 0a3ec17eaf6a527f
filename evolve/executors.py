"""Where evaluation jobs run: ``LocalExecutor`` (threads in this process, the default) or
``RayExecutor`` (Ray tasks on a local or remote cluster: ``--executor ray[:ADDRESS]``).

The protocol is deliberately small, so that it maps onto the run engine's executor when
that lands: ``submit(fn, job)`` returns a ``concurrent.futures.Future``; ``cancel`` gives
up on a job that hangs (a thread cannot be killed: it is abandoned and no longer counted;
a Ray task is force-cancelled). ``fn`` and ``job`` must be picklable for Ray (a top-level
function and plain records).

Example:
    with make_executor("ray", workers=2) as ex:
        future = ex.submit(run_job, job)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from exapt.errors import ConfigError, UnavailableError


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn(job)`` somewhere; at most ``workers`` are worth running at once."""

    name: str
    workers: int

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Future[Any]: ...

    def cancel(self, future: Future[Any]) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """One daemon thread per job (the caller keeps at most ``workers`` running), so a job
    that hangs can be abandoned without blocking the pool or the exit."""

    name = "local"

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_running_or_notify_cancel()

        def target() -> None:
            try:
                result = fn(job)
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                return
            if not future.done():
                future.set_result(result)

        threading.Thread(target=target, name="evolve-job", daemon=True).start()
        return future

    def cancel(self, future: Future[Any]) -> None:
        if not future.done():
            future.set_exception(TimeoutError("abandoned: the job did not finish in time"))

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RayExecutor:
    """Jobs as Ray tasks (one CPU each). ``address`` None starts a local cluster in this
    process (``num_cpus`` = ``workers``); ``auto`` or ``ray://HOST:PORT`` joins one.
    Workers inherit ``EXAPT_HOME`` and the offline settings."""

    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None) -> None:
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
            if k in ("EXAPT_HOME", "HF_HUB_OFFLINE", "LITELLM_LOCAL_MODEL_COST_MAP")
            or k.startswith("EXAPT_")
        }
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "runtime_env": {"env_vars": env},
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, workers or cpus)
        self._remote: dict[Callable[[Any], Any], Any] = {}
        self._refs: dict[int, Any] = {}

    def submit(self, fn: Callable[[Any], Any], job: Any) -> Future[Any]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        ref = remote.remote(job)
        future: Future[Any] = ref.future()
        self._refs[id(future)] = ref
        future.add_done_callback(lambda f: self._refs.pop(id(f), None))
        return future

    def cancel(self, future: Future[Any]) -> None:
        ref = self._refs.pop(id(future), None)
        if ref is not None:
            self._ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(spec: str, *, workers: int) -> LocalExecutor | RayExecutor:
    """``local`` or ``ray[:ADDRESS]`` (``ray`` alone starts a local cluster)."""
    kind, _, address = spec.partition(":")
    if kind == "local" and not address:
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(address or None, workers=workers if not address else None)
    raise ConfigError(
        f"unknown executor {spec!r}", hint="use local, ray (a local cluster) or ray:ADDRESS"
    )
