"""A long-lived bubblewrap sandbox that runs one command per request (bwrap's fast path).

Starting bubblewrap costs tens of ms per command (a network namespace, ~15 mounts, joining
a cgroup v1 is a ``synchronize_rcu``). A session pays that once: a small ``sh`` server runs
inside as uid 65534 and, for each request, forks the session script with its stdio on files
and FIFOs in ``io/<n>/`` (a host folder bound read-only; FIFOs stay writable on a read-only
mount). The host reads the FIFOs with the output cap and the server's reply line
``<n> <exit code>``; on timeout, and after every command, it SIGKILLs every process of the
sandbox's cgroup except the three that make it (bwrap, its pid 1, the server), so nothing
outlives ``exec``. If a command kills the server (``kill -9 -1``), the session is dead: the
command is reported killed and the next ``exec`` starts a new session.

Requires a cgroup (to find every process); without one the bwrap backend starts a fresh
sandbox per command instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from exapt.sandbox._cgroup import Cgroup
from exapt.sandbox._process import Captured

IO_INNER = "/run/exapt/io"
_SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="exapt-bwrap-spawner")
# $1 = the session script (see _process._BODY), $2 = the cwd file inside.
_SERVER = r"""
s=$1; cwdf=$2
echo ready
while IFS= read -r n; do
  d=/run/exapt/io/$n
  ( . "$d/req" && set -- /workspace "$__w" "$cwdf" "$__m" "$@" && eval "$s" ) \
    < "$d/in" > "$d/out" 2> "$d/err"
  echo "$n $?"
done
"""


# The same server for a container: requests and replies over FIFOs in the io folder (a
# detached `docker exec` has no usable stdin/stdout).
_SERVER_FIFO = 'exec < "/run/exapt/io/req" > "/run/exapt/io/rep"' + _SERVER


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


class Session:
    """One running server in a sandbox; ``run`` executes one command (not thread-safe: the
    sandbox holds a lock). ``keepers`` are the cgroup's processes that make the session."""

    def __init__(
        self,
        channel: Channel,
        *,
        io_dir: Path,
        cgroup: Cgroup,
        owner: tuple[int, int] | None,
        start_timeout: float = 20.0,
        spare: set[int] | None = None,
    ) -> None:
        self.channel = channel
        self.io_dir = io_dir
        self.cgroup = cgroup
        self.owner = owner
        self._n = 0
        self._buf = b""
        self._out = channel.reply_fd
        self.spare = spare or set()  # never killed by us (docker's pid 1)
        try:
            line = self._read_line(time.monotonic() + start_timeout)
            if line != b"ready":
                raise SessionDied(f"session did not start (got {line!r})")
            # The processes that make the session; everything else in the cgroup is a command.
            self.keepers = set(cgroup.pids())
            for pid in self.keepers - self.spare:
                # so the OOM killer takes the command, never the session
                with contextlib.suppress(OSError):
                    Path(f"/proc/{pid}/oom_score_adj").write_text("-1000")
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return self.channel.alive()

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SessionDied("session did not answer")
            sel = selectors.DefaultSelector()
            sel.register(self._out, selectors.EVENT_READ)
            try:
                ready = sel.select(remaining)
            finally:
                sel.close()
            if ready:
                chunk = os.read(self._out, 4096)
                if not chunk:
                    raise SessionDied("session ended")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.strip()

    def kill_commands(self, timeout: float = 3.0) -> None:
        """SIGKILL every process of the cgroup but the session's own, until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            others = [p for p in self.cgroup.pids() if p not in self.keepers]
            if not others or time.monotonic() > deadline:
                return
            for pid in others:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 9)
            time.sleep(0.002)

    def run(
        self,
        cmd: str | list[str],
        *,
        env: dict[str, str],
        cwd: str,
        stdin: bytes | None,
        timeout: float,
        max_bytes: int,
    ) -> Captured:
        """Run ``cmd`` (a shell string or an argv) in ``cwd`` with ``env``; see module doc."""
        if not self.alive:
            raise SessionDied("session ended")
        start = time.monotonic()
        self._n += 1
        # Unguessable: a command may write lines to the server's request channel; they
        # must never match (and so forge) the reply to one of our requests.
        n = f"{self._n}-{secrets.token_hex(8)}"
        d = self.io_dir / n
        d.mkdir()
        # Sourced by the server's subshell: the command, its cwd, its environment; the
        # server's own variables are dropped so the command sees only its own.
        argv = [cmd] if isinstance(cmd, str) else cmd
        lines = [
            f"set -- {shlex.join(argv)}",
            f"__m={'sh' if isinstance(cmd, str) else 'argv'}",
            f"__w={shlex.quote(cwd)}",
            "unset n d",
        ]
        # On top of the server's environment, DEFAULT_ENV (bwrap --clearenv --setenv).
        lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items() if k.isidentifier()]
        (d / "req").write_text("\n".join(lines) + "\n")
        (d / "in").write_bytes(stdin or b"")
        reads: list[int] = []
        dummies: list[int] = []
        try:
            for name in ("out", "err"):
                os.mkfifo(d / name, 0o600)
                if self.owner is not None:
                    os.chown(d / name, *self.owner)
            for name in ("out", "err"):
                reads.append(os.open(d / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            # Our own writers keep the FIFOs from reading as EOF before the command opens them.
            for name in ("out", "err"):
                dummies.append(os.open(d / name, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            self.channel.send(f"{n}\n".encode())
            return self._collect(n, reads, dummies, start, timeout, max_bytes)
        finally:
            for fd in reads + dummies:  # each exactly once: a double close could hit
                os.close(fd)  # another thread's fd (subprocess pipes)
            shutil.rmtree(d, ignore_errors=True)

    def _collect(
        self,
        n: str,
        reads: list[int],
        dummies: list[int],
        start: float,
        timeout: float,
        max_bytes: int,
    ) -> Captured:
        bufs = {fd: bytearray() for fd in reads}
        truncated = timed_out = died = False
        code: int | None = None
        sel = selectors.DefaultSelector()
        for fd in reads:
            sel.register(fd, selectors.EVENT_READ)
        sel.register(self._out, selectors.EVENT_READ)
        deadline = start + timeout
        drain_until: float | None = None
        try:
            while True:
                now = time.monotonic()
                if code is not None or died:
                    if drain_until is None:
                        self.kill_commands()  # orphans: nothing outlives the command
                        while dummies:  # popped, so run()'s cleanup cannot close them twice
                            os.close(dummies.pop())
                        drain_until = time.monotonic() + 1.0
                    if not any(fd in bufs for fd in (k.fd for k in sel.get_map().values())):
                        break
                    if now > drain_until:
                        break
                elif now >= deadline:
                    if timed_out:  # killed 3 s ago and still no reply: the server is stuck
                        died = True
                        continue
                    timed_out = True
                    self.kill_commands()
                    deadline = now + 3.0
                    continue
                limit = (drain_until if drain_until is not None else deadline) - now
                events = sel.select(max(0.0, min(limit, 0.2)))
                if not events and code is None and not self.channel.alive():
                    died = True
                for key, _ in events:
                    fd = int(key.fd)
                    if fd == self._out:
                        chunk = os.read(fd, 4096)
                        if not chunk:
                            sel.unregister(fd)
                            died = True
                            continue
                        self._buf += chunk
                        while b"\n" in self._buf:
                            line, _, self._buf = self._buf.partition(b"\n")
                            got_n, _, got_code = line.decode().partition(" ")
                            if got_n == n:
                                code = int(got_code)
                        continue
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        continue
                    buf = bufs[fd]
                    room = max_bytes - len(buf)
                    if len(chunk) > room:
                        truncated = True
                        chunk = chunk[:room]
                    buf += chunk
        finally:
            sel.close()
        if timed_out:
            code = -9
        elif code is None:
            code = 128 + 9  # the server died with the command: it was killed
        out, err = (bytes(bufs[fd]) for fd in reads)
        return Captured(code, out, err, timed_out, truncated, time.monotonic() - start)

    def close(self) -> None:
        """End the session: the server and every command (bwrap's pid namespace dies too)."""
        self.channel.close()
        self.kill_commands()
        for pid in getattr(self, "keepers", set()) - self.spare:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)


class SessionBox(Protocol):
    """What ``exec_in_session`` needs of a sandbox."""

    _session: Session | None
    cwd: str

    def _start_session(self) -> Session: ...


def exec_in_session(
    box: SessionBox,
    cmd: str | list[str],
    *,
    env: dict[str, str],
    stdin: bytes | None,
    timeout: float,
    max_bytes: int,
) -> Captured:
    """Run ``cmd`` in ``box``'s session, starting one if there is none or it died; a
    session a command killed is closed, to be restarted by the next call."""
    if box._session is None or not box._session.alive:
        if box._session is not None:
            box._session.close()
            box._session = None
        box._session = box._start_session()
    session = box._session
    try:
        cap = session.run(
            cmd,
            env=env,
            cwd=box.cwd,
            stdin=stdin,
            timeout=timeout,
            max_bytes=max_bytes,
        )
    except (SessionDied, OSError):
        cap = Captured(137, b"", b"", False, False, 0.0)
    if not session.alive:
        session.close()  # killed from inside (kill -9 -1): restart next time
        box._session = None
    return cap
