"""The nouns of isolation: ``Limits``, ``ExecResult`` and the ``Sandbox`` protocol.

A sandbox is a session around one workspace folder. Commands run inside with no network,
a read-only system, a private /tmp and only the workspace writable (the ``local`` backend
is the documented exception: it isolates nothing). Every limit in ``Limits`` is enforced.

Contract for every backend (tests/sandbox/ is the conformance suite all backends pass):
- ``exec`` never raises for what the command does (non-zero exit, timeout, OOM, huge
  output): that is reported in the ``ExecResult``. It raises ``SandboxError`` only when the
  sandbox itself is broken (closed, backend gone).
- The environment inside is exactly ``Limits.env`` + the ``env`` argument: nothing of the
  parent's environment is inherited (API keys never enter a sandbox).
- After ``close()`` no process started by the sandbox is alive and nothing of it is left.
- The session keeps its working directory between ``exec`` calls (``cd`` persists), the
  way an agent's shell would.
- The workspace is bounded (``Limits.workspace_mb``, ``Limits.workspace_files``): writes
  past the quota fail inside, and ``snapshot`` raises ``WorkspaceTooLarge`` (a
  ``SandboxError``) for a workspace over its limits, so a caller can end that one attempt.
- ``spawn`` starts one command with its stdin and stdout as pipes (``Interactive``): how a
  judge outside the sandbox talks to a solution inside in plain data, line by line.
- The control channel is out of reach: nothing a command runs can read, write or signal
  what runs the commands (another uid, files 0600/0700 of that uid, no inherited
  descriptors), so no command can forge another's exit status or output.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from exapt.errors import ExaptError
from exapt.records import ExecResult

__all__ = [
    "DEFAULT_ENV",
    "WORKSPACE",
    "ExecResult",
    "Interactive",
    "Limits",
    "Sandbox",
    "SandboxError",
    "WorkspaceTooLarge",
]

WORKSPACE = "/workspace"
#: folders nested deeper than this in a workspace make ``snapshot`` raise WorkspaceTooLarge
MAX_DEPTH = 64

#: Variables every sandbox gets; nothing else of the parent's environment is passed in.
DEFAULT_ENV: dict[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
}


class SandboxError(ExaptError):
    """The sandbox itself failed (not the command inside it)."""


class WorkspaceTooLarge(SandboxError):
    """A workspace over its limits (bytes, files or folder depth) could not be snapshot.

    What the code in the sandbox did, not a broken sandbox: callers turn it into that
    attempt's result (reward 0) and go on. ``what`` is ``"bytes"``, ``"files"`` or
    ``"depth"``; ``limit`` the limit that was passed.
    """

    def __init__(self, what: str, limit: int, detail: str = "") -> None:
        self.what = what
        self.limit = limit
        super().__init__(
            f"workspace over its {what} limit ({limit}){': ' + detail if detail else ''}",
            hint="the attempt's workspace is too big to score; make it smaller",
        )


class Limits(BaseModel):
    """Resource limits of one sandbox; all enforced. Defaults are safe for untrusted code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_s: float = Field(30.0, gt=0, description="wall-clock seconds per exec")
    cpu_s: int = Field(30, gt=0, description="CPU seconds per exec (RLIMIT_CPU)")
    memory_mb: int = Field(1024, gt=0, description="memory of the sandbox in MB")
    pids: int = Field(128, gt=0, description="processes/threads at once")
    output_bytes: int = Field(
        1_000_000, gt=0, description="stdout/stderr kept, each; the rest is cut and `truncated` set"
    )
    disk_mb: int = Field(512, gt=0, description="size of the private /tmp in MB")
    workspace_mb: int = Field(
        512, gt=0, description="size of the workspace in MB (a quota where the host allows)"
    )
    workspace_files: int = Field(
        20_000, gt=0, description="files and folders the workspace may hold"
    )
    network: bool = Field(
        False, description="network access; False = no interface but an empty loopback"
    )


@runtime_checkable
class Interactive(Protocol):
    """One command running in a sandbox, its stdin and stdout pipes held by the caller.

    ``readline`` returns one line of stdout (with its newline), ``b""`` at end of file,
    and raises ``TimeoutError`` when none came in ``timeout`` seconds or ``SandboxError``
    for a line over ``max_bytes``. stderr is read alongside (capped at
    ``Limits.output_bytes``) so a chatty command never blocks. ``close`` kills whatever the
    command left running and returns how it ended (stdout is empty there: it was read).
    """

    def send(self, data: bytes) -> None: ...

    def readline(self, timeout: float, max_bytes: int = 16_000_000) -> bytes: ...

    def close(self) -> ExecResult: ...

    def __enter__(self) -> Interactive: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """One isolated session around a workspace (``/workspace`` inside).

    Example:
        with open_sandbox("bwrap", files={"a.py": "print(1)"}) as box:
            assert box.exec("python3 a.py").stdout == "1\\n"
    """

    backend: str
    limits: Limits

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``cmd`` (a shell string, run by ``/bin/sh -c``, or an argv list) in the workspace."""
        ...

    def spawn(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Interactive:
        """Start ``cmd`` with pipes (see ``Interactive``); it is killed after ``timeout``
        (default ``Limits.wall_s``). The sandbox runs nothing else until it is closed."""
        ...

    def write(self, path: str, data: str | bytes) -> None:
        """Write a file under the workspace (``path`` relative, or absolute under /workspace)."""
        ...

    def read(self, path: str) -> bytes:
        """Read a file under the workspace; ``FileNotFoundError`` if absent."""
        ...

    def snapshot(self, max_bytes: int = 50_000_000) -> dict[str, bytes]:
        """All regular files of the workspace, relative path -> content (for scoring).

        Raises ``WorkspaceTooLarge`` past ``max_bytes``, ``Limits.workspace_files`` entries
        or ``MAX_DEPTH`` nested folders (symlinks and special files are skipped)."""
        ...

    def reset(self, files: dict[str, str | bytes] | None = None) -> None:
        """Empty the workspace, kill what runs, re-seed with ``files`` (pool reuse)."""
        ...

    def close(self) -> None:
        """Kill every process of the sandbox and remove what it made. Idempotent."""
        ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...


def workspace_relpath(path: str) -> str:
    """Normalise a workspace path to a relative one; refuse anything that leaves the workspace."""
    p = PurePosixPath(path)
    if p.is_absolute():
        try:
            p = p.relative_to(WORKSPACE)
        except ValueError as exc:
            raise SandboxError(f"path {path!r} is outside {WORKSPACE}") from exc
    if any(part == ".." for part in p.parts) or str(p) in ("", "."):
        raise SandboxError(f"path {path!r} is not a file inside {WORKSPACE}")
    return str(p)
