"""One ``docker exec`` with its streams: captured with a cap (``run_exec``), or held open
for a judge to talk to line by line (``SocketInteractive``, ``Sandbox.spawn``).

The engine multiplexes stdout and stderr on one socket: frames of an 8-byte header (stream
id, 3 pad bytes, big-endian size) and the payload.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from exapt.records import ExecResult
from exapt.sandbox._capture import Capped
from exapt.sandbox._interactive import LineChannel
from exapt.sandbox._process import Captured
from exapt.sandbox.base import SandboxError

_MAX_PENDING = 64 << 20


class Frames:
    """Splits the multiplexed stream into (stream id, payload) pieces."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        self.pending += chunk
        out: list[tuple[int, bytes]] = []
        while len(self.pending) >= 8:
            stream, size = struct.unpack(">BxxxL", self.pending[:8])
            if len(self.pending) < 8 + size:
                break
            out.append((stream, self.pending[8 : 8 + size]))
            self.pending = self.pending[8 + size :]
        if len(self.pending) > _MAX_PENDING:  # pragma: no cover - a malformed stream
            raise SandboxError("docker exec stream is malformed")
        return out


def start(
    api: Any, container: str, argv: list[str], env: dict[str, str], user: str, stdin: bool
) -> tuple[str, Any, socket.socket]:
    """Create and start an exec attached to a socket: (exec id, SDK socket, raw socket)."""
    ex = api.exec_create(
        container, argv, stdin=stdin, user=user, environment=env, workdir="/workspace"
    )
    sock = api.exec_start(ex["Id"], socket=True)
    return ex["Id"], sock, getattr(sock, "_sock", sock)


def exit_code(api: Any, exec_id: str) -> int | None:
    """The exec's exit code once the engine has it (None if it is still running)."""
    for _ in range(200):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(0.01)
    return None


def run_exec(
    api: Any,
    container: str,
    argv: list[str],
    *,
    env: dict[str, str],
    user: str,
    stdin: bytes | None,
    timeout: float,
    max_bytes: int,
    kill: Callable[[], None],
) -> Captured:
    """Run ``argv`` in ``container``, capturing the first ``max_bytes`` of each stream;
    ``kill`` (every process of the container but its pid 1) on timeout."""
    begin = time.monotonic()
    exec_id, sock, raw = start(api, container, argv, env, user, stdin is not None)
    if stdin is not None:
        with contextlib.suppress(OSError):
            raw.sendall(stdin)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)
    bufs = {1: Capped(max_bytes), 2: Capped(max_bytes)}
    frames = Frames()
    timed_out = False
    deadline = begin + timeout
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                if timed_out:
                    break  # killed, but the stream did not end: give up on it
                timed_out = True
                kill()
                deadline = now + 3.0
            raw.settimeout(max(0.01, deadline - now))
            try:
                chunk = raw.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            for stream, payload in frames.feed(chunk):
                bufs[stream if stream in (1, 2) else 2].add(payload)
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    code = exit_code(api, exec_id)
    if code is None:
        kill()
        code = 137
    out, err = bufs[1], bufs[2]
    return Captured(
        code,
        out.bytes(),
        err.bytes(),
        timed_out,
        out.truncated or err.truncated,
        time.monotonic() - begin,
    )


class SocketInteractive(LineChannel):
    """A ``docker exec`` whose stdin and stdout the caller holds (``Sandbox.spawn``)."""

    def __init__(
        self,
        api: Any,
        container: str,
        argv: list[str],
        *,
        env: dict[str, str],
        user: str,
        timeout: float,
        stderr_bytes: int,
        kill: Callable[[], None],
        finish: Callable[[Captured], ExecResult],
    ) -> None:
        super().__init__(timeout, stderr_bytes)
        self._api = api
        self._kill = kill
        self._finish = finish
        self._exec_id, self._sock, self._raw = start(api, container, argv, env, user, True)
        self._frames = Frames()

    def _pump(self, timeout: float) -> None:
        self._raw.settimeout(max(0.01, min(timeout, 0.5)))
        try:
            chunk = self._raw.recv(65536)
        except TimeoutError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._eof = True
            return
        for stream, payload in self._frames.feed(chunk):
            if stream == 1:
                self._buf += payload
            else:
                self.err.add(payload)

    def send(self, data: bytes) -> None:
        self._raw.settimeout(max(0.01, self._check_time()))
        try:
            self._raw.sendall(data)
        except TimeoutError as exc:
            self.timed_out = True
            raise TimeoutError("the command does not read its stdin") from exc
        except OSError as exc:
            raise BrokenPipeError(str(exc)) from exc

    def close(self) -> ExecResult:
        if self._closed is not None:
            return self._closed
        self._kill()
        with contextlib.suppress(OSError):
            self._sock.close()
        code = exit_code(self._api, self._exec_id)
        cap = Captured(
            137 if code is None else code,
            b"",
            self.err.bytes(),
            self.timed_out,
            self.err.truncated,
            time.monotonic() - self.started,
        )
        result = self._closed = self._finish(cap)
        return result
