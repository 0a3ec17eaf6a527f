"""The ``docker`` backend: one long-lived container per sandbox.

Commands run through a small server in the container that forks each one (``_session.py``;
no ``docker exec`` round trip per command) when the container's cgroup is visible on this
host, which is how every command's processes are found and killed; otherwise (a remote
engine, or ``DockerExecSandbox``) through one ``docker exec`` per command.

The container (image ``exapt-sandbox:latest`` by default, built locally with
``exapt sandbox build-image``) runs its commands as uid/gid 65534 with ``network_mode="none"``,
every capability dropped but CAP_SETUID/SETGID (which only the session server, root in the
container, holds and uses to drop each command to 65534; commands have none),
``no-new-privileges``, a read-only root, a ``/tmp`` tmpfs of ``Limits.disk_mb``, memory
(swap included), CPU and pids limits, and the host workspace folder (with its quota)
bind-mounted at ``/workspace`` (so host-side read/write/snapshot are the same symlink-safe
code as bwrap's). Its pid 1 is a tiny Python reaper running as root (with those two
capabilities only: docker gives an exec the capabilities of the container's first process),
which commands can neither signal nor trace. After every command, and on timeout, every
other process of the sandbox is killed (but the server), so nothing outlives ``exec``.
Containers carry the label ``exapt.sandbox=1`` plus the owning host and pid; those of dead
owners are removed by the next sandbox opened (``_docker_client``).

Example:
    with DockerSandbox(files={"a.py": "print(1)"}) as box:
        assert box.exec("python3 a.py").stdout == "1\\n"
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from exapt.errors import ConfigError, UnavailableError
from exapt.sandbox._cgroup import Cgroup
from exapt.sandbox._channels import FifoChannel, SessionDied
from exapt.sandbox._docker_client import (
    BUILD_HINT,
    DEFAULT_IMAGE,
    LABEL,
    cleanup_once,
    cleanup_stale,
    docker_client,
    unavailable_reason,
)
from exapt.sandbox._docker_exec import SocketInteractive, run_exec
from exapt.sandbox._docker_procs import USER, ContainerProcesses
from exapt.sandbox._host import HostSandbox
from exapt.sandbox._process import Captured, session_script
from exapt.sandbox._session import (
    _SERVER_FIFO,
    DROP,
    IO_INNER,
    Session,
)
from exapt.sandbox._session_ops import (
    check_request,
    clear_tmp,
    session_exec,
    session_spawn,
)
from exapt.sandbox.base import (
    DEFAULT_ENV,
    WORKSPACE,
    ExecResult,
    Interactive,
    Limits,
    SandboxError,
)

__all__ = [
    "BUILD_HINT",
    "DEFAULT_IMAGE",
    "LABEL",
    "DockerExecSandbox",
    "DockerSandbox",
    "cleanup_stale",
    "unavailable_reason",
]

CWD_FILE = "/run/exapt/cwd"

#: the reaper (pid 1): not the commands' uid, so they can neither signal nor ptrace it; root,
#: because an exec gets the capabilities of the container's first process (the server needs
#: CAP_SETUID/SETGID to drop each command to 65534)
REAPER_USER = "0:0"
#: the session server: root in the container with CAP_SETUID/SETGID only (see _session)
SERVER_USER = "0:0"
# pid 1: reaps orphans.
_REAPER = (
    "import os,signal\n"
    "signal.signal(signal.SIGTERM,lambda *a:os._exit(0))\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK,[signal.SIGCHLD])\n"
    "while True:\n"
    "    try: os.waitpid(-1,0)\n"
    "    except ChildProcessError: signal.sigtimedwait([signal.SIGCHLD],1)\n"
)
# Runs the session script as a child, then kills every other process of the sandbox user
# (orphans, daemons) before returning, so the exec's output stream ends with the command.
_CLEAR_TMP = "find /tmp -mindepth 1 -delete"
_OUTER = 's=$1; shift; /bin/sh -c "$s" exapt-session "$@"; rc=$?; kill -9 -1 2>/dev/null; exit $rc'


class DockerSandbox(ContainerProcesses, HostSandbox):
    """A session in one container (see module doc)."""

    backend: ClassVar[str] = "docker"
    inner_root = WORKSPACE
    #: a server in the container instead of one `docker exec` per command, when possible
    fast: ClassVar[bool] = True

    def __init__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
        *,
        image: str | None = None,
        ro_binds: Sequence[str] | None = None,
        cpus: float = 1.0,
    ) -> None:
        if ro_binds:
            raise ConfigError(
                "the docker backend does not bind host paths (ro_binds)",
                hint="put what the sandbox needs into the image, or use backend 'bwrap'",
            )
        if cpus <= 0:
            raise ConfigError(f"cpus must be > 0, got {cpus}")
        import docker.errors

        self.image = image or DEFAULT_IMAGE
        self._client = docker_client()
        cleanup_once(self._client)
        try:
            self._client.images.get(self.image)
        except docker.errors.ImageNotFound as exc:
            raise UnavailableError(f"docker image {self.image} not found", hint=BUILD_HINT) from exc
        self.container: Any = None
        self._session: Session | None = None
        super().__init__(files, limits, use_cgroup=False)
        try:
            self._start(cpus)
        except BaseException:
            self.close()
            raise

    def _start(self, cpus: float) -> None:
        lim = self.limits
        self.io_dir = self.state / "io"
        self.io_dir.mkdir(mode=0o700)  # root's: the session server's alone
        mem = f"{lim.memory_mb}m"
        self.container = self._client.containers.run(
            self.image,
            ["/usr/bin/python3", "-c", _REAPER],
            detach=True,
            user=REAPER_USER,
            labels={LABEL: "1", "exapt.host": socket.gethostname(), "exapt.pid": str(os.getpid())},
            network_mode="bridge" if lim.network else "none",
            mem_limit=mem,
            memswap_limit=mem,
            nano_cpus=int(cpus * 1e9),
            pids_limit=lim.pids + 3,  # + reaper and our two wrapper shells
            read_only=True,
            tmpfs={"/tmp": f"size={lim.disk_mb}m,mode=1777,exec"},
            volumes={
                str(self.workspace): {"bind": WORKSPACE, "mode": "rw"},
                str(self.cwd_file): {"bind": CWD_FILE, "mode": "rw"},
                str(self.io_dir): {"bind": IO_INNER, "mode": "ro"},
            },
            working_dir=WORKSPACE,
            environment=dict(DEFAULT_ENV),
            cap_drop=["ALL"],
            cap_add=["SETUID", "SETGID"],  # effective for the root server only
            security_opt=["no-new-privileges"],
            ipc_mode="private",
            hostname="exapt",
        )
        self._script = session_script(lim, memory=False, nproc=False)
        self._find_cgroups()

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the container; see ``Sandbox.exec``. One command at a time."""
        check_request(cmd, timeout)
        with self._lock:
            self._check_open()
            try:
                if self.session_mode:
                    return session_exec(
                        self, cmd, env=env, stdin=stdin, timeout=timeout, oom_kills=self._oom_kills
                    )
                return self._exec_once(cmd, env, stdin, timeout)
            except SandboxError:
                raise
            except Exception as exc:  # engine gone, container removed underneath us
                raise SandboxError(f"docker exec failed: {exc}") from exc

    def _exec_once(
        self,
        cmd: str | list[str],
        env: dict[str, str] | None,
        stdin: str | bytes | None,
        timeout: float | None,
    ) -> ExecResult:
        """One ``docker exec`` (no session server)."""
        before = self._oom_kills()
        argv = ["/bin/sh", "-c", _OUTER, "exapt", self._script, *self._session_args(cmd)]
        cap = run_exec(
            self._client.api,
            self.container.id,
            argv,
            env={**DEFAULT_ENV, **(env or {})},
            user=USER,
            stdin=stdin.encode() if isinstance(stdin, str) else stdin,
            timeout=timeout or self.limits.wall_s,
            max_bytes=self.limits.output_bytes,
            kill=self._kill_all,
        )
        if self._procs_file is not None or cap.timed_out:
            self._kill_all()  # belt and braces: _OUTER already did `kill -9 -1`
        oom = self._oom_kills() > before
        if self._oom_file is None and cap.returncode == 137 and not cap.timed_out:
            oom = True  # no cgroup to ask: SIGKILL from nowhere is most likely the OOM killer
        self._update_cwd()
        return self._result(cap, oom)

    def spawn(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Interactive:
        """Start ``cmd`` with pipes (``Sandbox.spawn``): forked by the session's server in
        session mode, else one ``docker exec`` attached to a socket, as uid 65534. The
        sandbox is busy until it is closed."""
        check_request(cmd, timeout)
        self._lock.acquire()
        if self.session_mode and not self._closed:
            return session_spawn(
                self,
                cmd,
                env=env,
                timeout=timeout,
                oom_kills=self._oom_kills,
                release=self._lock.release,
            )
        try:
            self._check_open()
            before = self._oom_kills()
            argv = ["/bin/sh", "-c", self._script, "exapt-session", *self._session_args(cmd)]

            def finish(cap: Captured) -> ExecResult:
                try:
                    return self._result(cap, self._oom_kills() > before)
                finally:
                    self._lock.release()

            return SocketInteractive(
                self._client.api,
                self.container.id,
                argv,
                env={**DEFAULT_ENV, **(env or {})},
                user=USER,
                timeout=timeout or self.limits.wall_s,
                stderr_bytes=self.limits.output_bytes,
                kill=self._kill_all,
                finish=finish,
            )
        except SandboxError:
            self._lock.release()
            raise
        except Exception as exc:
            self._lock.release()
            raise SandboxError(f"docker exec failed: {exc}") from exc

    def _inner_cwd_file(self) -> str:
        return CWD_FILE

    # -- session mode: a server in the container forks each command (no `docker exec`) --

    @property
    def session_mode(self) -> bool:
        """Needs the container's cgroup on this host, to find and kill every command."""
        return self.fast and self._procs_file is not None and self._reaper_pid > 0

    def _start_session(self) -> Session:
        assert self._procs_file is not None
        for entry in self.io_dir.iterdir():  # what a dead session left
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        channel = FifoChannel(self.io_dir, None)  # root's, like the folder
        try:
            api = self._client.api
            ex = api.exec_create(
                self.container.id,
                ["/bin/sh", "-c", _SERVER_FIFO, "exapt-server", self._script, CWD_FILE, DROP],
                stdout=False,
                stderr=False,
                user=SERVER_USER,
                environment=dict(DEFAULT_ENV),
                workdir=WORKSPACE,
            )
            api.exec_start(ex["Id"], detach=True)
            dirs = {"pids": self._procs_file.parent}
            if self._oom_file is not None:
                dirs["memory"] = self._oom_file.parent
            group = Cgroup(
                dirs, 1 if self._oom_file is None or "oom_control" in self._oom_file.name else 2
            )
            session = Session(
                channel,
                io_dir=self.io_dir,
                cgroup=group,
                owner=None,
                spare={self._reaper_pid},
            )
        except SessionDied as exc:
            channel.close()
            raise SandboxError(f"docker: {exc}") from exc
        channel.pids = session.keepers - {self._reaper_pid}
        return session

    def reset(self, files: Mapping[str, str | bytes] | None = None) -> None:
        """Kill what runs, empty the workspace and /tmp, re-seed, start again in /workspace."""
        with self._lock:
            self._check_open()
            self._kill_all()
            self._session = clear_tmp(self._session)
            if self._session is None:
                with contextlib.suppress(Exception):
                    self.container.exec_run(["/bin/sh", "-c", _CLEAR_TMP], user=USER)
        super().reset(files)

    def close(self) -> None:
        """Remove the container (killing everything in it) and the workspace. Idempotent."""
        session = getattr(self, "_session", None)
        if session is not None:
            session.channel.close()  # the container's removal ends the server
            self._session = None
        container = getattr(self, "container", None)
        if container is not None and not self._closed:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        super().close()


class DockerExecSandbox(DockerSandbox):
    """One ``docker exec`` per command, never a session server (what ``docker`` falls back
    to when the engine's cgroups are not visible, e.g. a remote engine). Open it as
    ``open_sandbox("exapt.sandbox.docker:DockerExecSandbox")``."""

    fast: ClassVar[bool] = False
