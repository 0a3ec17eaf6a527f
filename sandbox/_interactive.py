"""``Sandbox.spawn``'s handle: a command whose stdin and stdout the caller holds.

``LineChannel`` is what every transport shares (a line buffer, the command's deadline,
stderr read alongside with a cap so a chatty command never blocks on a full pipe);
``PipeInteractive`` is the transport of host processes (bwrap, local): three pipes.
Docker's multiplexed exec socket is in ``_docker_exec.py``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from exapt.records import ExecResult
from exapt.sandbox._capture import Capped
from exapt.sandbox._process import Captured
from exapt.sandbox.base import SandboxError


class LineChannel(ABC):
    """Lines of a command's stdout, read against its deadline (see ``Interactive``)."""

    _closed: ExecResult | None
    _eof: bool

    def __init__(self, timeout: float, stderr_bytes: int) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.err = Capped(stderr_bytes)
        self.timed_out = False
        self._buf = bytearray()
        self._eof = False
        self._closed: ExecResult | None = None

    def readline(self, timeout: float, max_bytes: int = 16_000_000) -> bytes:
        end = min(time.monotonic() + timeout, self.deadline)
        while True:
            cut = self._buf.find(b"\n")
            if cut >= 0:
                line = bytes(self._buf[: cut + 1])
                del self._buf[: cut + 1]
                return line
            if len(self._buf) > max_bytes:
                raise SandboxError(f"a line of over {max_bytes} bytes from the command")
            if self._eof:
                line = bytes(self._buf)
                self._buf.clear()
                return line
            now = time.monotonic()
            if now >= end:
                if now >= self.deadline:
                    self.timed_out = True
                raise TimeoutError("no line from the command in time")
            self._pump(end - now)

    def _check_time(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.timed_out = True
            raise TimeoutError("the command's time is up")
        return remaining

    @abstractmethod
    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for output; add stdout to ``_buf`` (``_eof`` at its end)
        and stderr to ``err``."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Write ``data`` to the command's stdin (``BrokenPipeError`` once it closed it)."""

    @abstractmethod
    def close(self) -> ExecResult: ...

    def __enter__(self) -> LineChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PipeInteractive(LineChannel):
    """A host process (bwrap, local) with three pipes. ``kill`` must end every process of
    the command; ``finish`` turns what happened into the ``ExecResult`` (and releases the
    sandbox)."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None,
        cwd: str | None,
        timeout: float,
        stderr_bytes: int,
        kill: Callable[[subprocess.Popen[bytes]], None],
        finish: Callable[[Captured], ExecResult],
    ) -> None:
        super().__init__(timeout, stderr_bytes)
        self._kill = kill
        self._finish = finish
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._in, self._out, self._err = (
            self.proc.stdin.fileno(),
            self.proc.stdout.fileno(),
            self.proc.stderr.fileno(),
        )
        for fd in (self._in, self._out, self._err):
            os.set_blocking(fd, False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._out, selectors.EVENT_READ)
        self._sel.register(self._err, selectors.EVENT_READ)

    def _drain(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        for key, _ in events:
            fd = int(key.fd)
            if fd == self._err:
                if not self.err.read_from(fd):
                    self._sel.unregister(fd)
            elif fd == self._out:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    self._buf += chunk
                else:
                    self._eof = True
                    self._sel.unregister(fd)

    def _pump(self, timeout: float) -> None:
        if not self._sel.get_map():
            self._eof = True
            return
        self._drain(self._sel.select(max(0.0, min(timeout, 0.5))))

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._check_time()
            try:
                view = view[os.write(self._in, view[:65536]) :]
                continue
            except BlockingIOError:
                pass
            # the pipe is full: read what the command wrote meanwhile, then try again
            with selectors.DefaultSelector() as sel:
                sel.register(self._in, selectors.EVENT_WRITE)
                for key in self._sel.get_map().values():
                    sel.register(key.fd, selectors.EVENT_READ)
                ready = sel.select(0.2)
            self._drain([(k, e) for k, e in ready if k.fd != self._in])

    def close(self) -> ExecResult:
        if self._closed is not None:
            return self._closed
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        self._kill(self.proc)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._kill(self.proc)
            self.proc.wait()
        with contextlib.suppress(OSError):  # what it wrote last (killed: its pipes are closed)
            while chunk := os.read(self._err, 65536):
                self.err.add(chunk)
        self._sel.close()
        for f in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()  # type: ignore[union-attr]
        cap = Captured(
            self.proc.returncode,
            b"",
            self.err.bytes(),
            self.timed_out,
            self.err.truncated,
            time.monotonic() - self.started,
        )
        result = self._closed = self._finish(cap)
        return result
