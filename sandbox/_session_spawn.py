"""``Sandbox.spawn`` through a running session: the server forks the command (no new
bubblewrap, no ``docker exec``) with its stdin, stdout and stderr on the request's FIFOs.

The command's end is the server's reply line (``<n> <exit code>``), not EOF on stdout:
our own dummy writers keep the FIFOs open until the command has ended, so a command that
has not opened them yet never reads as finished.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import time
from collections.abc import Callable

from exapt.records import ExecResult
from exapt.sandbox._channels import SessionDied
from exapt.sandbox._interactive import LineChannel
from exapt.sandbox._process import Captured
from exapt.sandbox._session import Request, Session, SessionBox, ensure_session
from exapt.sandbox.base import DEFAULT_ENV


class SessionInteractive(LineChannel):
    """One command of ``session`` with pipes held by the caller (see ``Interactive``)."""

    def __init__(
        self,
        session: Session,
        cmd: str | list[str],
        *,
        env: dict[str, str],
        cwd: str,
        timeout: float,
        stderr_bytes: int,
        finish: Callable[[Captured], ExecResult],
    ) -> None:
        super().__init__(timeout, stderr_bytes)
        self._session = session
        self._finish = finish
        self._code: int | None = None
        self._req: Request = session.prepare(cmd, env=env, cwd=cwd, stdin=None)
        self._out, self._err = self._req.reads
        self._sel = selectors.DefaultSelector()
        for fd in (self._out, self._err, session._out):
            self._sel.register(fd, selectors.EVENT_READ)
        try:
            session.channel.send(f"{self._req.n}\n".encode())
        except BaseException:
            self._release()
            raise

    def _ended(self) -> None:
        """The command exited: drop our writers, so what is left reads to EOF."""
        while self._req.dummies:
            os.close(self._req.dummies.pop())

    def _pump(self, timeout: float) -> None:
        if self._eof:
            return
        for key, _ in self._sel.select(max(0.0, min(timeout, 0.5))):
            fd = int(key.fd)
            if fd == self._session._out:
                try:
                    code = self._session.poll_reply(self._req.n)
                except SessionDied:
                    code = 137
                if code is not None:
                    self._code = code
                    self._sel.unregister(fd)
                    self._ended()
            elif fd == self._err:
                if not self.err.read_from(fd):
                    self._sel.unregister(fd)
            else:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    self._buf += chunk
                else:
                    self._eof = True
        if not self._eof and self._code is None and not self._session.alive:
            self._code = 137
            self._ended()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._check_time()
            if self._code is not None:
                raise BrokenPipeError("the command has ended")
            try:
                view = view[os.write(self._req.stdin_fd, view[:65536]) :]
            except BlockingIOError:
                self._pump(0.05)  # full: the command reads slower than we write

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self._sel.close()
        self._session.release(self._req)

    def close(self) -> ExecResult:
        if self._closed is not None:
            return self._closed
        # EOF on its stdin, then nothing of it may outlive close
        if self._req.stdin_fd >= 0:
            os.close(self._req.stdin_fd)
            self._req.stdin_fd = -1
        self._session.kill_commands()
        deadline = time.monotonic() + 3.0
        while self._code is None and time.monotonic() < deadline and self._session.alive:
            try:
                self._code = self._session.poll_reply(self._req.n)
            except SessionDied:
                break
            if self._code is None:
                time.sleep(0.002)
        self._ended()
        with contextlib.suppress(OSError):  # what it wrote last (BlockingIOError: nothing)
            while chunk := os.read(self._err, 65536):
                self.err.add(chunk)
        self._release()
        cap = Captured(
            137 if self._code is None else self._code,
            b"",
            self.err.bytes(),
            self.timed_out,
            self.err.truncated,
            time.monotonic() - self.started,
        )
        self._closed = self._finish(cap)
        return self._closed


def session_spawn(
    box: SessionBox,
    cmd: str | list[str],
    *,
    env: dict[str, str] | None,
    timeout: float | None,
    oom_kills: Callable[[], int],
    release: Callable[[], None],
) -> SessionInteractive:
    """``Sandbox.spawn`` through ``box``'s session; the caller holds the sandbox's lock,
    which ``release`` gives back once the command is closed (or failed to start)."""
    try:
        before = oom_kills()
        session = ensure_session(box)

        def finish(cap: Captured) -> ExecResult:
            try:
                if not session.alive:
                    session.close()
                    box._session = None
                return box._result(cap, oom_kills() > before)
            finally:
                release()

        return SessionInteractive(
            session,
            cmd,
            env={**DEFAULT_ENV, **(env or {})},
            cwd=box.cwd,
            timeout=timeout or box.limits.wall_s,
            stderr_bytes=box.limits.output_bytes,
            finish=finish,
        )
    except BaseException:
        release()
        raise
