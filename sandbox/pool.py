"""A thread-safe pool of warm sandboxes, reset between uses.

Opening a sandbox costs ~0.3-1 s for docker (a container start) and a few ms for bwrap;
a pool opens up to ``size`` of them once and hands them out. ``acquire(files)`` blocks
until one is free, resets it with ``files`` (fresh workspace, nothing running, cwd back at
/workspace) and returns it on exit of the ``with`` block. A sandbox whose reset fails is
closed and replaced by a new one, so a broken box is never handed out twice.

``factory()`` is the same as a sandbox factory (``factory(files) -> Sandbox``): what it
returns goes back to the pool when closed, reset, so a scorer's "fresh sandbox" is a warm
one with nothing of its last use (workspace, /tmp, processes).

Example:
    with SandboxPool("docker", size=4) as pool:
        with pool.acquire({"a.py": "print(1)"}) as box:
            box.exec("python3 a.py")
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from exapt.errors import ConfigError
from exapt.sandbox.base import Limits, Sandbox, SandboxError


class SandboxPool:
    """Up to ``size`` sandboxes of one backend; opened lazily, closed by ``close()``."""

    def __init__(
        self,
        backend: str = "default",
        size: int = 2,
        limits: Limits | None = None,
        *,
        image: str | None = None,
        ro_binds: Sequence[str] | None = None,
    ) -> None:
        if size < 1:
            raise ConfigError(f"pool size must be >= 1, got {size}")
        from exapt.sandbox import default_backend

        self.backend = default_backend() if backend == "default" else backend
        self.size = size
        self.limits = limits or Limits()
        self._image = image
        self._ro_binds = ro_binds
        self._free: queue.LifoQueue[Sandbox] = queue.LifoQueue()  # LIFO: the warmest first
        self._all: list[Sandbox] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def _open(self, files: Mapping[str, str | bytes] | None) -> Sandbox:
        from exapt.sandbox import open_sandbox

        box = open_sandbox(
            self.backend,
            files=files,
            limits=self.limits,
            image=self._image,
            ro_binds=self._ro_binds,
        )
        with self._lock:
            self._all.append(box)
        return box

    @contextlib.contextmanager
    def acquire(
        self, files: Mapping[str, str | bytes] | None = None, timeout: float | None = None
    ) -> Iterator[Sandbox]:
        """A sandbox seeded with ``files``; blocks while all ``size`` are in use."""
        if self._closed:
            raise SandboxError("sandbox pool is closed")
        if not self._slots.acquire(timeout=timeout):
            raise SandboxError(f"no free sandbox in the pool after {timeout} s")
        box: Sandbox | None = None
        try:
            box = self._checkout(files)
            yield box
        finally:
            if box is not None:
                self._checkin(box)
            self._slots.release()

    def factory(self) -> Callable[[Mapping[str, str | bytes]], Sandbox]:
        """``factory(files)``: a pooled sandbox seeded with ``files``, back to the pool on
        ``close()`` (a ``SandboxFactory`` for scorers)."""

        def lease(files: Mapping[str, str | bytes]) -> Sandbox:
            if self._closed:
                raise SandboxError("sandbox pool is closed")
            self._slots.acquire()
            try:
                return Leased(self, self._checkout(files))  # type: ignore[return-value]
            except BaseException:
                self._slots.release()
                raise

        return lease

    def _give_back(self, box: Sandbox) -> None:
        try:
            self._checkin(box)
        finally:
            self._slots.release()

    def _checkout(self, files: Mapping[str, str | bytes] | None) -> Sandbox:
        try:
            box = self._free.get_nowait()
        except queue.Empty:
            return self._open(files)
        try:
            # Boxes in the free list were reset at check-in: empty, nothing running.
            for name, data in (files or {}).items():
                box.write(name, data)
        except Exception:
            self._discard(box)
            return self._open(files)
        return box

    def _checkin(self, box: Sandbox) -> None:
        if self._closed:
            self._discard(box)
            return
        try:
            box.reset()  # kill what the user left running now, not at the next acquire
        except Exception:
            self._discard(box)
            return
        self._free.put(box)

    def _discard(self, box: Sandbox) -> None:
        with self._lock:
            if box in self._all:
                self._all.remove(box)
        with contextlib.suppress(Exception):
            box.close()

    def close(self) -> None:
        """Close every sandbox of the pool (those in use are closed when returned)."""
        self._closed = True
        with self._lock:
            boxes, self._all = list(self._all), []
        while True:
            try:
                self._free.get_nowait()
            except queue.Empty:
                break
        for box in boxes:
            with contextlib.suppress(Exception):
                box.close()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Leased:
    """A pooled sandbox as a plain ``Sandbox``: ``close`` returns it to its pool."""

    def __init__(self, pool: SandboxPool, box: Sandbox) -> None:
        self._pool = pool
        self._box: Sandbox | None = box
        self.backend = box.backend
        self.limits = box.limits

    def __getattr__(self, name: str) -> Any:
        box = self.__dict__.get("_box")
        if box is None:
            raise SandboxError("this pooled sandbox was closed")
        return getattr(box, name)

    def close(self) -> None:
        box, self._box = self._box, None
        if box is not None:
            self._pool._give_back(box)

    def __enter__(self) -> Leased:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
