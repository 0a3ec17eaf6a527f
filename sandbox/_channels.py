"""How the host talks to a session's server: request lines out, reply lines in.

``ProcessChannel``: the server is a host process (bwrap), its stdin and stdout are ours.
``FifoChannel``: the server is in a container (docker), reached through ``io/req`` and
``io/rep`` FIFOs (a detached ``docker exec`` has no usable stdin/stdout), root's and 0600.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="exapt-bwrap-spawner")


class SessionDied(Exception):
    """The server inside is gone (a command killed it); start a new session."""


class Channel(Protocol):
    """How the host talks to a server: request lines out, reply lines in (``reply_fd``)."""

    reply_fd: int

    def send(self, data: bytes) -> None: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class ProcessChannel:
    """A server that is a host process (bwrap): its stdin and stdout."""

    def __init__(self, argv: list[str]) -> None:
        # bwrap --die-with-parent follows the *thread* that started it: start it from one
        # long-lived thread, not from a pool worker that may exit while the session is used.
        self.proc = _SPAWNER.submit(
            subprocess.Popen,
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            start_new_session=True,
            close_fds=True,
        ).result()
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.reply_fd = self.proc.stdout.fileno()
        os.set_blocking(self.reply_fd, False)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise SessionDied("session ended") from exc

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 9)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                f.close()  # type: ignore[union-attr]


class FifoChannel:
    """A server reached through ``io/req`` and ``io/rep`` FIFOs (docker). Opened O_RDWR on
    our side so neither end blocks or reads EOF; liveness is checked through ``pids``."""

    def __init__(self, io_dir: Path, owner: tuple[int, int] | None) -> None:
        for name in ("req", "rep"):
            os.mkfifo(io_dir / name, 0o600)
            if owner is not None:
                os.chown(io_dir / name, *owner)
        self._req = os.open(io_dir / "req", os.O_RDWR | os.O_CLOEXEC)
        self.reply_fd = os.open(io_dir / "rep", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.pids: set[int] = set()  # the server's processes, once known

    def send(self, data: bytes) -> None:
        os.write(self._req, data)

    def alive(self) -> bool:
        for pid in self.pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
                return False
        return True

    def close(self) -> None:
        """Idempotent: each fd is closed once (a second close could hit a reused number)."""
        fds, self._req, self.reply_fd = (self._req, self.reply_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
