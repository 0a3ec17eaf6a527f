"""What bwrap and docker do through their session (``_session.Session``): ``session_exec``
(``Sandbox.exec``), ``session_spawn`` (``Sandbox.spawn``) and ``clear_tmp`` (``reset``).

A spawned command is forked by the server (no new bubblewrap, no ``docker exec``) with its
stdin, stdout and stderr on the request's FIFOs.

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
from typing import Protocol

from exapt.records import ExecResult
from exapt.sandbox._channels import SessionDied
from exapt.sandbox._interactive import LineChannel
from exapt.sandbox._process import Captured
from exapt.sandbox._session import Request, Session
from exapt.sandbox.base import DEFAULT_ENV, Limits, SandboxError


class SessionBox(Protocol):
    """What ``session_exec`` needs of a sandbox (bwrap's and docker's)."""

    _session: Session | None
    cwd: str
    limits: Limits

    def _start_session(self) -> Session: ...

    def _update_cwd(self) -> None: ...

    def _result(self, cap: Captured, oom: bool) -> ExecResult: ...


def check_request(cmd: str | list[str], timeout: float | None) -> None:
    """``SandboxError`` for a request no backend can run."""
    if timeout is not None and timeout <= 0:
        raise SandboxError(f"timeout must be > 0, got {timeout}")
    if isinstance(cmd, list) and not cmd:
        raise SandboxError("empty argv")


def session_exec(
    box: SessionBox,
    cmd: str | list[str],
    *,
    env: dict[str, str] | None,
    stdin: str | bytes | None,
    timeout: float | None,
    oom_kills: Callable[[], int],
) -> ExecResult:
    """``Sandbox.exec`` through ``box``'s session (the caller holds its lock): a new
    session if there is none or it died; a session a command killed is closed, to be
    restarted by the next call; the cwd is kept across."""
    before = oom_kills()
    session = ensure_session(box)
    try:
        cap = session.run(
            cmd,
            env={**DEFAULT_ENV, **(env or {})},
            cwd=box.cwd,
            stdin=stdin.encode() if isinstance(stdin, str) else stdin,
            timeout=timeout or box.limits.wall_s,
            max_bytes=box.limits.output_bytes,
        )
    except (SessionDied, OSError):
        cap = Captured(137, b"", b"", False, False, 0.0)
    if not session.alive:
        session.close()
        box._session = None
    box._update_cwd()
    return box._result(cap, oom_kills() > before)


def ensure_session(box: SessionBox) -> Session:
    """``box``'s session, a new one if there is none or it died."""
    if box._session is None or not box._session.alive:
        if box._session is not None:
            box._session.close()
            box._session = None
        box._session = box._start_session()
    return box._session


def clear_tmp(session: Session | None) -> Session | None:
    """Kill what runs in ``session`` and empty its /tmp (reset); the session, or None if
    it is gone."""
    if session is None or not session.alive:
        return session
    session.kill_commands()
    try:
        session.run(
            "find /tmp -mindepth 1 -delete",
            env=dict(DEFAULT_ENV),
            cwd="/workspace",
            stdin=None,
            timeout=10,
            max_bytes=1000,
        )
    except (SessionDied, OSError):
        session.close()
        return None
    return session


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
        result = self._closed = self._finish(cap)
        return result


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
