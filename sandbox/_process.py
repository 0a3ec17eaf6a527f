"""Run one sandboxed command as a host subprocess: the shared part of ``bwrap`` and ``local``.

- ``session_script`` wraps a command so it starts in the session's working directory, runs
  under hard rlimits it cannot raise, and records its final directory (``cd`` persists).
- ``run_captured`` reads stdout/stderr with a cap (the rest is read and dropped, so 100 MB of
  output never sits in memory), enforces the wall time, and on timeout calls ``kill`` which
  must end every process of the command (a process group or a cgroup, not just one pid).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exapt.sandbox._capture import Capped
from exapt.sandbox.base import Limits

# $1 = workspace root, $2 = cwd to start in, $3 = file to record the final cwd in,
# $4 = "sh" (then $5 is a shell string, eval'd so that `cd` changes the recorded cwd) or
# "argv" (then $5... is the argv, exec'd: it cannot change the cwd, so nothing to record).
# Rlimits come first, as `ulimit` lines (hard + soft).
_BODY = r"""
__exapt_cwdf=$3
cd -- "$2" 2>/dev/null || cd -- "$1" || exit 126
__exapt_mode=$4; shift 4
if [ "$__exapt_mode" = argv ]; then unset __exapt_cwdf __exapt_mode; exec "$@"; fi
trap 'pwd > "$__exapt_cwdf" 2>/dev/null' EXIT
__exapt_cmd=$1; shift; unset __exapt_mode; eval "$__exapt_cmd"
"""


def ulimit_lines(limits: Limits, *, memory: bool, nproc: bool) -> str:
    """dash ``ulimit`` lines for ``limits``; ``memory``/``nproc`` when no cgroup does it."""
    lines = [
        f"ulimit -t {limits.cpu_s}",
        # file size in 512-byte blocks: no single file may exceed the disk budget
        f"ulimit -f {limits.disk_mb * 2048}",
        "ulimit -c 0",
    ]
    if memory:
        lines.append(f"ulimit -v {limits.memory_mb * 1024}")
    if nproc:
        lines.append(f"ulimit -p {limits.pids}")
    return "\n".join(lines)


def session_script(limits: Limits, *, memory: bool, nproc: bool) -> str:
    return ulimit_lines(limits, memory=memory, nproc=nproc) + "\n" + _BODY


def session_args(cmd: str | Sequence[str], *, root: str, cwd: str, cwd_file: str) -> list[str]:
    """Positional arguments of ``session_script`` for ``cmd``."""
    if isinstance(cmd, str):
        return [root, cwd, cwd_file, "sh", cmd]
    if not cmd:
        raise ValueError("empty argv")
    return [root, cwd, cwd_file, "argv", *cmd]


@dataclass
class Captured:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    truncated: bool
    duration_s: float


def run_captured(
    argv: list[str],
    *,
    env: dict[str, str] | None,
    stdin: bytes | None,
    timeout: float,
    max_bytes: int,
    kill: Callable[[subprocess.Popen[bytes]], None],
    before: Callable[[subprocess.Popen[bytes]], None] | None = None,
    cwd: str | None = None,
    drain_after_exit: float = 0.5,
) -> Captured:
    """Run ``argv`` and capture its output (first ``max_bytes`` of each stream).

    ``kill(proc)`` is called on timeout and must kill the whole tree. After the main process
    exits, pipes still held open by escaped descendants are drained for at most
    ``drain_after_exit`` seconds and then ``kill`` is called too.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own process group: the timeout kills the group
        close_fds=True,
    )
    if before is not None:
        before(proc)
    assert proc.stdout is not None and proc.stderr is not None
    bufs: dict[int, Capped] = {
        proc.stdout.fileno(): Capped(max_bytes),
        proc.stderr.fileno(): Capped(max_bytes),
    }
    timed_out = False
    sel = selectors.DefaultSelector()
    for fd in bufs:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pending_in = memoryview(stdin) if stdin else None
    stdin_fd = proc.stdin.fileno() if proc.stdin is not None else -1
    if proc.stdin is not None:
        if pending_in:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    deadline = start + timeout
    exit_deadline: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                kill(proc)
                exit_deadline = now + drain_after_exit
            if exit_deadline is None and proc.poll() is not None:
                exit_deadline = now + drain_after_exit
            if exit_deadline is not None and now >= exit_deadline:
                kill(proc)  # something outlived the command and holds its pipes
                break
            wait_for = (exit_deadline if exit_deadline is not None else deadline) - now
            for key, _ in sel.select(timeout=max(0.0, min(wait_for, 0.1))):
                fd = int(key.fd)
                if fd == stdin_fd:
                    assert proc.stdin is not None
                    assert pending_in is not None
                    try:
                        pending_in = pending_in[os.write(fd, pending_in[:65536]) :]
                    except (BrokenPipeError, BlockingIOError) as exc:
                        if isinstance(exc, BlockingIOError):
                            continue
                        pending_in = pending_in[len(pending_in) :]
                    if not pending_in:
                        sel.unregister(fd)
                        proc.stdin.close()
                    continue
                if not bufs[fd].read_from(fd):
                    sel.unregister(fd)
    finally:
        sel.close()
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()) if not timed_out else 5)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill(proc)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    out, err = bufs.values()
    return Captured(
        proc.returncode,
        out.bytes(),
        err.bytes(),
        timed_out,
        out.truncated or err.truncated,
        time.monotonic() - start,
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``proc`` leads (``start_new_session=True``)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 9)
