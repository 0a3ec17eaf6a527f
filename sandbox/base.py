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
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from exapt.errors import ExaptError
from exapt.records import ExecResult

__all__ = ["DEFAULT_ENV", "WORKSPACE", "ExecResult", "Limits", "Sandbox", "SandboxError"]

WORKSPACE = "/workspace"

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
    network: bool = Field(
        False, description="network access; False = no interface but an empty loopback"
    )


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

    def write(self, path: str, data: str | bytes) -> None:
        """Write a file under the workspace (``path`` relative, or absolute under /workspace)."""
        ...

    def read(self, path: str) -> bytes:
        """Read a file under the workspace; ``FileNotFoundError`` if absent."""
        ...

    def snapshot(self, max_bytes: int = 50_000_000) -> dict[str, bytes]:
        """All regular files of the workspace, relative path -> content (for scoring)."""
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
