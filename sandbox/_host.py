"""What ``bwrap`` and ``local`` share: a workspace folder on the host, a cgroup, one process
per ``exec`` (run by ``_process.run_captured``) and a session kept in a small state folder.

A session's state folder (``exapt-<backend>-<pid>-XXXX`` in the temp dir) holds
``workspace/`` (as root, a tmpfs of its own with the workspace quota: ``_quota.py``) and
``cwd`` (the working directory the last command ended in). Folders of processes that died
without ``close()`` are removed by the next sandbox opened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from exapt.sandbox import _cgroup, _files, _quota
from exapt.sandbox._interactive import PipeInteractive
from exapt.sandbox._process import Captured, kill_group, run_captured, session_args
from exapt.sandbox.base import DEFAULT_ENV, ExecResult, Interactive, Limits, SandboxError

NOBODY = (65534, 65534)
_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()


def cleanup_stale(backend: str) -> None:
    """Remove state folders and cgroups of exapt processes that are gone (once per process)."""
    with _cleaned_lock:
        if backend in _cleaned:
            return
        _cleaned.add(backend)
    prefix = f"exapt-{backend}-"
    base = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for d in base.glob(f"{prefix}*"):
            pid = d.name[len(prefix) :].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _remove_tree(d)
    _cgroup.cleanup_stale()


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(OSError):
        workspace = path / "workspace"
        if _quota.is_mounted(workspace):
            _quota.unmount(workspace)
        elif workspace.is_dir():
            _files.clear(workspace)
        if _quota.is_mounted(path):
            _quota.unmount(path)
        shutil.rmtree(path, ignore_errors=True)


class HostSandbox:
    """Base of the backends that run host processes. Subclasses set ``backend`` and build
    the argv of one command in ``_argv``; everything else (files, limits, kill) is here."""

    backend: ClassVar[str] = ""
    #: the workspace path as the command sees it
    inner_root: str = "/workspace"
    #: processes of the backend itself that count against the cgroup's pids limit
    reserved_pids: ClassVar[int] = 0

    def __init__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
        *,
        use_cgroup: bool = True,
    ) -> None:
        cleanup_stale(self.backend)
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._closed = False
        self.state = Path(tempfile.mkdtemp(prefix=f"exapt-{self.backend}-{os.getpid()}-"))
        try:
            # a small tmpfs of its own where allowed: fast mkfifo/mkdir for each command
            _quota.mount(self.state, 16, 4096, None, mode=0o700)
            self.workspace = self.state / "workspace"
            self.workspace.mkdir()
            self.cwd_file = self.state / "cwd"
            self.cwd_file.touch(mode=0o600)
            # Running as root, commands run as nobody and must own what they may change.
            self.owner = NOBODY if os.geteuid() == 0 and self._drops_privileges() else None
            self.quota = self._mount_workspace()
            if self.owner is not None:
                os.chown(self.workspace, *self.owner)
                os.chown(self.cwd_file, *self.owner)
            self.cgroup = (
                _cgroup.make(self.limits.memory_mb, self.limits.pids + self.reserved_pids)
                if use_cgroup
                else None
            )
            self.cwd = self.inner_root
            _files.seed(self.workspace, files, self.owner)
        except BaseException:
            self.close()
            raise

    def _mount_workspace(self) -> bool:
        """A tmpfs with the workspace quota on the workspace folder, where allowed."""
        lim = self.limits
        return _quota.mount(self.workspace, lim.workspace_mb, lim.workspace_files, self.owner)

    # -- to override -------------------------------------------------------------------

    def _drops_privileges(self) -> bool:
        return True

    def _argv(
        self, cmd: str | list[str], env: dict[str, str]
    ) -> tuple[list[str], dict[str, str] | None]:
        """(argv to start on the host, environment of that host process)."""
        raise NotImplementedError

    # -- Sandbox protocol --------------------------------------------------------------

    def _launch_prefix(self) -> list[str]:
        """Join the cgroup before anything starts: a shell writes its own pid, then execs."""
        if self.cgroup is None:
            return []
        files = self.cgroup.procs_files
        return [
            "/bin/sh",
            "-c",
            'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"',
            "exapt-launch",
            files[0],
            files[-1],
        ]

    def _session_args(self, cmd: str | list[str]) -> list[str]:
        return session_args(
            cmd, root=self.inner_root, cwd=self.cwd, cwd_file=self._inner_cwd_file()
        )

    def _inner_cwd_file(self) -> str:
        return str(self.cwd_file)

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the session; see ``Sandbox.exec``. One command at a time."""
        if timeout is not None and timeout <= 0:
            raise SandboxError(f"timeout must be > 0, got {timeout}")
        with self._lock:
            if self._closed:
                raise SandboxError(f"{self.backend} sandbox is closed")
            full_env = {**DEFAULT_ENV, **(env or {})}
            argv, host_env = self._argv(cmd, full_env)
            oom_before = self.cgroup.oom_kills() if self.cgroup else 0
            data = stdin.encode() if isinstance(stdin, str) else stdin
            try:
                cap = run_captured(
                    self._launch_prefix() + argv,
                    env=host_env,
                    stdin=data,
                    timeout=timeout or self.limits.wall_s,
                    max_bytes=self.limits.output_bytes,
                    kill=self._kill,
                    cwd=self._host_cwd(),
                )
            except OSError as exc:
                raise SandboxError(f"{self.backend}: could not start {argv[0]}: {exc}") from exc
            finally:
                if self.cgroup is not None:
                    self.cgroup.kill_all()  # nothing of this command outlives it
            oom = bool(self.cgroup and self.cgroup.oom_kills() > oom_before)
            self._update_cwd()
            return self._result(cap, oom)

    def spawn(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Interactive:
        """Start ``cmd`` with pipes (``Sandbox.spawn``); the sandbox is busy until closed."""
        if timeout is not None and timeout <= 0:
            raise SandboxError(f"timeout must be > 0, got {timeout}")
        if isinstance(cmd, list) and not cmd:
            raise SandboxError("empty argv")
        self._lock.acquire()
        try:
            self._check_open()
            argv, host_env = self._argv(cmd, {**DEFAULT_ENV, **(env or {})})
            oom_before = self.cgroup.oom_kills() if self.cgroup else 0

            def finish(cap: Captured) -> ExecResult:
                try:
                    if self.cgroup is not None:
                        self.cgroup.kill_all()
                    oom = bool(self.cgroup and self.cgroup.oom_kills() > oom_before)
                    return self._result(cap, oom)
                finally:
                    self._lock.release()

            return PipeInteractive(
                self._launch_prefix() + argv,
                env=host_env,
                cwd=self._host_cwd(),
                timeout=timeout or self.limits.wall_s,
                stderr_bytes=self.limits.output_bytes,
                kill=self._kill,
                finish=finish,
            )
        except OSError as exc:
            self._lock.release()
            raise SandboxError(f"{self.backend}: could not start a command: {exc}") from exc
        except BaseException:
            self._lock.release()
            raise

    def _host_cwd(self) -> str | None:
        return None

    def _result(self, cap: Captured, oom: bool) -> ExecResult:
        if not oom and self.cgroup is None and cap.returncode != 0:
            # Without a cgroup only RLIMIT_AS bounds memory: allocation fails inside.
            oom = b"MemoryError" in cap.stderr[-4096:]
        return ExecResult(
            exit_code=cap.returncode,
            stdout=cap.stdout.decode("utf-8", "replace"),
            stderr=cap.stderr.decode("utf-8", "replace"),
            timed_out=cap.timed_out,
            oom_killed=oom,
            truncated=cap.truncated,
            duration_s=round(cap.duration_s, 6),
            backend=self.backend,
        )

    def _kill(self, proc: object) -> None:
        kill_group(proc)  # type: ignore[arg-type]
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _update_cwd(self) -> None:
        # Written by untrusted code: bounded read, and only a folder inside the workspace.
        # (Not truncated after reading: a killed command leaves the previous cwd in it.)
        try:
            with open(self.cwd_file, "rb") as fh:
                raw = fh.read(4097)
        except OSError:
            return
        cwd = raw.decode("utf-8", "replace").strip()
        root = self.inner_root
        if len(raw) <= 4096 and (cwd == root or cwd.startswith(root + "/")) and "\n" not in cwd:
            self.cwd = cwd

    def write(self, path: str, data: str | bytes) -> None:
        self._check_open()
        _files.write_file(self.workspace, self._rel(path), data, self.owner)

    def read(self, path: str) -> bytes:
        self._check_open()
        return _files.read_file(self.workspace, self._rel(path))

    def snapshot(self, max_bytes: int = 50_000_000) -> dict[str, bytes]:
        self._check_open()
        return _files.snapshot(self.workspace, max_bytes, self.limits.workspace_files)

    def _rel(self, path: str) -> str:
        # Accept the workspace path as the command sees it (local: a host folder).
        if self.inner_root != "/workspace" and path.startswith(self.inner_root + "/"):
            return path[len(self.inner_root) + 1 :]
        return path

    def reset(self, files: Mapping[str, str | bytes] | None = None) -> None:
        """Kill what runs, empty the workspace, re-seed it, and start again in its root."""
        with self._lock:
            self._check_open()
            self._kill_for_reset()
            # Emptied, not a fresh tmpfs: a running bwrap session or container keeps its
            # bind of this one. clear never follows a symlink and falls back to rm's
            # iterative walk for a tree too deep for shutil.rmtree.
            _files.clear(self.workspace)
            self.cwd = self.inner_root
            self.cwd_file.write_bytes(b"")
            _files.seed(self.workspace, files, self.owner)

    def _kill_for_reset(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def close(self) -> None:
        """Kill every process, remove the cgroup and the state folder. Idempotent."""
        if self._closed:
            return
        self._closed = True
        cgroup = getattr(self, "cgroup", None)
        if cgroup is not None:
            cgroup.remove()
        _remove_tree(self.state)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox is closed")

    def __enter__(self) -> HostSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
