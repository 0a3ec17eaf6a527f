"""``InsideSandbox``: the ``Sandbox`` a variant's tools use *inside* the task's sandbox.

The variant already runs in the sandbox (no network, read-only system, the task's limits);
its tools act there too: a command is a subprocess of the runner, started in the
workspace with the same shell wrapper, rlimits and ``cd`` persistence as the host-side
backends (``exapt.sandbox._process``: one code path for what a command may do), and file
tools read and write ``/workspace`` with the same symlink-refusing helpers. Nothing here is
a security boundary: the sandbox around it is.

Example:
    box = InsideSandbox(Limits())
    box.exec("ls").stdout
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from exapt.sandbox import _files
from exapt.sandbox._process import kill_group, run_captured, session_args, session_script
from exapt.sandbox.base import (
    DEFAULT_ENV,
    WORKSPACE,
    ExecResult,
    Interactive,
    Limits,
    Sandbox,
    SandboxError,
)


class InsideSandbox:
    backend: str = "inside"

    def __init__(self, limits: Limits, root: str = WORKSPACE) -> None:
        self.limits = limits
        self.root = Path(root)
        self.cwd = root
        # rlimits per command (memory and pids are the outer sandbox's, for all at once)
        self._script = session_script(limits, memory=False, nproc=False)
        fd, name = tempfile.mkstemp(prefix="exapt-cwd-")
        os.close(fd)
        self._cwd_file = name
        self._lock = threading.Lock()

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        if timeout is not None and timeout <= 0:
            raise SandboxError(f"timeout must be > 0, got {timeout}")
        args = session_args(cmd, root=str(self.root), cwd=self.cwd, cwd_file=self._cwd_file)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        with self._lock:
            cap = run_captured(
                ["/bin/sh", "-c", self._script, "exapt-session", *args],
                env={**DEFAULT_ENV, **(env or {})},
                stdin=data,
                timeout=timeout or self.limits.wall_s,
                max_bytes=self.limits.output_bytes,
                kill=kill_group,
            )
            self._update_cwd()
        return ExecResult(
            exit_code=cap.returncode,
            stdout=cap.stdout.decode("utf-8", "replace"),
            stderr=cap.stderr.decode("utf-8", "replace"),
            timed_out=cap.timed_out,
            oom_killed=cap.returncode != 0 and b"MemoryError" in cap.stderr[-4096:],
            truncated=cap.truncated,
            duration_s=round(cap.duration_s, 6),
            backend=self.backend,
        )

    def _update_cwd(self) -> None:
        try:
            cwd = Path(self._cwd_file).read_text(errors="replace").strip()
        except OSError:
            return
        root = str(self.root)
        if cwd == root or cwd.startswith(root + "/"):
            self.cwd = cwd

    def spawn(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Interactive:
        raise SandboxError("spawn is not available to a variant's tools; use exec")

    def write(self, path: str, data: str | bytes) -> None:
        _files.write_file(self.root, path, data)

    def read(self, path: str) -> bytes:
        return _files.read_file(self.root, path)

    def snapshot(self, max_bytes: int = 50_000_000) -> dict[str, bytes]:
        return _files.snapshot(self.root, max_bytes, self.limits.workspace_files)

    def reset(self, files: Mapping[str, str | bytes] | None = None) -> None:
        raise SandboxError("a variant cannot reset the task's workspace")

    def close(self) -> None:
        Path(self._cwd_file).unlink(missing_ok=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
