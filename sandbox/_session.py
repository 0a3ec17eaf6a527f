"""A long-lived sandbox that runs one command per request (the fast path of bwrap and docker).

Starting bubblewrap costs tens of ms per command (a network namespace, ~15 mounts, joining
a cgroup v1 is a ``synchronize_rcu``); a ``docker exec`` ~70 ms. A session pays that once:
a small ``sh`` server runs inside and, for each request, forks the session script with its
stdio on files and FIFOs in ``io/<n>/`` (a host folder bound read-only; FIFOs stay writable
on a read-only mount). The host reads the FIFOs with the output cap and the server's reply
line ``<n> <exit code>``; on timeout, and after every command, it SIGKILLs every process of
the sandbox's cgroup except those that make the session, so nothing outlives ``exec``.

The control channel is out of the commands' reach: the server runs as another uid than the
commands (bwrap: 65533 with only CAP_SETUID/SETGID; docker: root with only those two), the
io folder is 0700 and its files 0600 of that uid, and each command drops to uid 65534 with
no capabilities (``setpriv``, inheritable and ambient sets cleared, ``no_new_privs``) after
its stdio were set to its own three files. So a command cannot read another's request or
output, write the reply pipe, or signal or ptrace the server: no command can forge another's
exit status, and ``kill -9 -1`` kills only commands. Should the server still die, the command
is reported killed and the next ``exec`` starts a new session.

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
import time
from dataclasses import dataclass, field
from pathlib import Path

from exapt.sandbox._capture import Capped
from exapt.sandbox._cgroup import Cgroup
from exapt.sandbox._channels import Channel, SessionDied
from exapt.sandbox._privs import NOBODY, setpriv_argv
from exapt.sandbox._process import Captured

IO_INNER = "/run/exapt/io"
#: the uid of a bwrap session's server (the commands run as 65534)
SERVER_UID = 65533
#: how the server drops each command to uid 65534 with no capabilities at all
DROP = " ".join(setpriv_argv(NOBODY, ambient=True, bounding=False))
# $1 = the session script (see _process._BODY), $2 = the cwd file inside. The request file
# sets the command's argv, cwd and environment in the subshell, which then becomes the
# command (its stdio already redirected to the request's own files).
_SERVER = r"""
s=$1; cwdf=$2; drop=$3
echo ready
while IFS= read -r n; do
  d=/run/exapt/io/$n
  ( . "$d/req" && exec $drop /bin/sh -c "$s" exapt-session /workspace "$__w" "$cwdf" "$__m" "$@" ) \
    < "$d/in" > "$d/out" 2> "$d/err"
  echo "$n $?"
done
"""


# The same server for a container: requests and replies over FIFOs in the io folder (a
# detached `docker exec` has no usable stdin/stdout).
_SERVER_FIFO = 'exec < "/run/exapt/io/req" > "/run/exapt/io/rep"' + _SERVER


@dataclass
class Request:
    """One command's io folder and our descriptors of it (see ``Session.prepare``)."""

    n: str
    dir: Path
    reads: list[int] = field(default_factory=list)
    dummies: list[int] = field(default_factory=list)
    stdin_fd: int = -1


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
        start = time.monotonic()
        req = self.prepare(cmd, env=env, cwd=cwd, stdin=stdin)
        try:
            self.channel.send(f"{req.n}\n".encode())
            return self._collect(req.n, req.reads, req.dummies, start, timeout, max_bytes)
        finally:
            self.release(req)

    def prepare(
        self, cmd: str | list[str], *, env: dict[str, str], cwd: str, stdin: bytes | None
    ) -> Request:
        """The io folder of one request: its req file, stdin (a file, or with ``stdin=None``
        a FIFO whose writer ``Request.stdin_fd`` we hold), out/err FIFOs opened for reading
        with our own dummy writers (so they do not read as EOF before the command opens
        them). Send ``Request.n`` to start it; ``release`` it after."""
        if not self.alive:
            raise SessionDied("session ended")
        self._n += 1
        # Unguessable: a command may write lines to the server's request channel; they
        # must never match (and so forge) the reply to one of our requests.
        n = f"{self._n}-{secrets.token_hex(8)}"
        d = self.io_dir / n
        d.mkdir(mode=0o700)
        if self.owner is not None:
            os.chown(d, *self.owner)
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
        self._private(d, "req").write_text("\n".join(lines) + "\n")
        req = Request(n, d)
        try:
            fifos = ("out", "err") if stdin is not None else ("in", "out", "err")
            if stdin is not None:
                self._private(d, "in").write_bytes(stdin)
            for name in fifos:
                os.mkfifo(d / name, 0o600)
                if self.owner is not None:
                    os.chown(d / name, *self.owner)
            if stdin is None:  # O_RDWR: opens at once, and we are its only writer
                req.stdin_fd = os.open(d / "in", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            for name in ("out", "err"):
                req.reads.append(os.open(d / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            for name in ("out", "err"):
                req.dummies.append(os.open(d / name, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except BaseException:
            self.release(req)
            raise
        return req

    def release(self, req: Request) -> None:
        """Close what ``prepare`` opened (each fd exactly once: a double close could hit
        another thread's fd) and remove the request's folder."""
        fds = [*req.reads, *req.dummies, req.stdin_fd]
        req.reads, req.dummies, req.stdin_fd = [], [], -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(req.dir, ignore_errors=True)

    def poll_reply(self, n: str) -> int | None:
        """The exit code of request ``n`` if the server's reply is there (non-blocking);
        raises ``SessionDied`` at the end of the reply channel."""
        while True:
            while b"\n" in self._buf:
                line, _, self._buf = self._buf.partition(b"\n")
                got_n, _, got_code = line.decode(errors="replace").partition(" ")
                if got_n == n:
                    return int(got_code)
            try:
                chunk = os.read(self._out, 4096)
            except BlockingIOError:
                return None
            if not chunk:
                raise SessionDied("session ended")
            self._buf += chunk

    def _private(self, d: Path, name: str) -> Path:
        """An empty file ``d/name`` readable by the server's uid alone."""
        path = d / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        if self.owner is not None:
            os.fchown(fd, *self.owner)
        os.close(fd)
        return path

    def _collect(
        self,
        n: str,
        reads: list[int],
        dummies: list[int],
        start: float,
        timeout: float,
        max_bytes: int,
    ) -> Captured:
        bufs = {fd: Capped(max_bytes) for fd in reads}
        timed_out = died = False
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
                        try:
                            got = self.poll_reply(n)
                        except SessionDied:
                            sel.unregister(fd)
                            died = True
                            continue
                        if got is not None:
                            code = got
                        continue
                    if not bufs[fd].read_from(fd):
                        sel.unregister(fd)
        finally:
            sel.close()
        if timed_out:
            code = -9
        elif code is None:
            code = 128 + 9  # the server died with the command: it was killed
        out, err = (bufs[fd] for fd in reads)
        truncated = out.truncated or err.truncated
        return Captured(
            code, out.bytes(), err.bytes(), timed_out, truncated, time.monotonic() - start
        )

    def close(self) -> None:
        """End the session: the server and every command (bwrap's pid namespace dies too)."""
        self.channel.close()
        self.kill_commands()
        for pid in getattr(self, "keepers", set()) - self.spare:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 9)
