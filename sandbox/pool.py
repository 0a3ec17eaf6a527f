"""A thread-safe pool of warm sandboxes, reset between uses.

Opening a sandbox costs ~0.3-1 s for docker (a container start) and a few ms for bwrap;
a pool opens up to ``size`` of them once and hands them out. ``acquire(files)`` blocks
until one is free, resets it with ``files`` (fresh workspace, nothing running, cwd back at
/workspace) and returns it on exit of the ``with`` block. A sandbox whose reset fails is
closed and replaced by a new one, so a broken box is never handed out twice.

Example:
    with SandboxPool("docker", size=4) as pool:
        with pool.acquire({"a.py": "print(1)"}) as box:
            box.exec("python3 a.py")
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence

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
