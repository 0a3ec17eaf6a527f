"""The ``docker`` backend: one long-lived container per sandbox.

Commands run through a small server in the container that forks each one (``_session.py``;
no ``docker exec`` round trip per command) when the container's cgroup is visible on this
host, which is how every command's processes are found and killed; otherwise (a remote
engine, or ``DockerExecSandbox``) through one ``docker exec`` per command.

The container (image ``exapt-sandbox:latest`` by default, built locally with
``exapt sandbox build-image``) runs as uid/gid 65534 with ``network_mode="none"``, all
capabilities dropped, ``no-new-privileges``, a read-only root, a ``/tmp`` tmpfs of
``Limits.disk_mb``, memory (swap included), CPU and pids limits, and the host workspace
folder bind-mounted at ``/workspace`` (so host-side read/write/snapshot are the same
symlink-safe code as bwrap's). Its pid 1 is a tiny Python reaper that ``kill -9 -1`` cannot
kill. After every command, and on timeout, every other process of the sandbox is killed
(but the server), so nothing outlives ``exec``. Containers carry the label ``exapt.sandbox=1`` plus
the owning host and pid; those of dead owners are removed by the next sandbox opened.

Example:
    with DockerSandbox(files={"a.py": "print(1)"}) as box:
        assert box.exec("python3 a.py").stdout == "1\\n"
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from exapt.errors import ConfigError, UnavailableError
from exapt.sandbox._cgroup import Cgroup
from exapt.sandbox._host import HostSandbox
from exapt.sandbox._process import Captured, session_script
from exapt.sandbox._session import (
    _SERVER_FIFO,
    IO_INNER,
    FifoChannel,
    Session,
    SessionDied,
    exec_in_session,
)
from exapt.sandbox.base import DEFAULT_ENV, WORKSPACE, ExecResult, Limits, SandboxError

DEFAULT_IMAGE = "exapt-sandbox:latest"
LABEL = "exapt.sandbox"
BUILD_HINT = "build it with `exapt sandbox build-image` (debootstrap + docker import, ~1-2 min)"
CWD_FILE = "/run/exapt/cwd"
USER = "65534:65534"
# pid 1: reaps orphans; as uid 65534 it survives `kill -9 -1` (the kernel spares pid 1).
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
_OUTER = 's=$1; shift; /bin/sh -c "$s" exapt-session "$@"; rc=$?; kill -9 -1 2>/dev/null; exit $rc'

_client_lock = threading.Lock()
_client: Any = None
_cleaned = False


def _docker_client() -> Any:
    """The process-wide docker client; raises ``UnavailableError`` if no engine answers."""
    global _client
    with _client_lock:
        if _client is not None:
            return _client
        try:
            import docker
        except ImportError as exc:  # pragma: no cover - docker is a dependency
            raise UnavailableError(
                "the docker SDK is not installed", hint="pip install docker"
            ) from exc
        try:
            client = docker.from_env(timeout=60)
            client.ping()
        except Exception as exc:  # the SDK raises several kinds for "no engine"
            raise UnavailableError(
                f"no Docker engine answers ({type(exc).__name__})",
                hint="start one: dockerd --bridge=none --iptables=false --ip-forward=false &"
                " (or set DOCKER_HOST)",
            ) from exc
        _client = client
        return client


def unavailable_reason(image: str = DEFAULT_IMAGE) -> str | None:
    """None if the docker backend works here with ``image``, else why not and what to do."""
    try:
        client = _docker_client()
    except UnavailableError as exc:
        return f"{exc.message}; {exc.hint}"
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return f"image {image} is not built: {BUILD_HINT}"
    except docker.errors.APIError as exc:
        return f"docker engine error: {exc}"
    return None


def cleanup_stale(client: Any) -> int:
    """Remove labelled containers whose owner process on this host is gone; returns count."""
    removed = 0
    host = socket.gethostname()
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        labels = c.labels or {}
        pid = labels.get("exapt.pid", "")
        if labels.get("exapt.host") == host and pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue  # a live sandbox of a running exapt process
        with contextlib.suppress(Exception):
            c.remove(force=True)
            removed += 1
    return removed


class DockerSandbox(HostSandbox):
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
        global _cleaned
        if ro_binds:
            raise ConfigError(
                "the docker backend does not bind host paths (ro_binds)",
                hint="put what the sandbox needs into the image, or use backend 'bwrap'",
            )
        if cpus <= 0:
            raise ConfigError(f"cpus must be > 0, got {cpus}")
        import docker.errors

        self.image = image or DEFAULT_IMAGE
        self._client = _docker_client()
        if not _cleaned:
            _cleaned = True
            cleanup_stale(self._client)
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
        self.io_dir.mkdir(mode=0o755)
        mem = f"{lim.memory_mb}m"
        self.container = self._client.containers.run(
            self.image,
            ["/usr/bin/python3", "-c", _REAPER],
            detach=True,
            user=USER,
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
            security_opt=["no-new-privileges"],
            ipc_mode="private",
            hostname="exapt",
        )
        self._script = session_script(lim, memory=False, nproc=False)
        self._find_cgroups()

    def _find_cgroups(self) -> None:
        """The container's cgroup files on this host (local engine): ``memory.oom_control``
        (or v2 ``memory.events``) to count OOM kills, ``cgroup.procs`` to kill from outside
        even when a fork bomb leaves no pid for a ``kill`` exec. Missing: None."""
        self._oom_file: Path | None = None
        self._procs_file: Path | None = None
        self._reaper_pid = 0
        with contextlib.suppress(Exception):
            self.container.reload()
            self._reaper_pid = int(self.container.attrs["State"]["Pid"])
            for line in Path(f"/proc/{self._reaper_pid}/cgroup").read_text().splitlines():
                _id, ctrls, path = line.split(":", 2)
                rel = path.lstrip("/")
                if "memory" in ctrls.split(","):
                    self._oom_file = Path("/sys/fs/cgroup/memory") / rel / "memory.oom_control"
                elif "pids" in ctrls.split(","):
                    self._procs_file = Path("/sys/fs/cgroup/pids") / rel / "cgroup.procs"
                elif _id == "0" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
                    self._oom_file = Path("/sys/fs/cgroup") / rel / "memory.events"
                    self._procs_file = Path("/sys/fs/cgroup") / rel / "cgroup.procs"
        if self._oom_file is not None and not self._oom_file.exists():
            self._oom_file = None
        if self._procs_file is not None and not self._procs_file.exists():
            self._procs_file = None

    def _oom_kills(self) -> int:
        if self._oom_file is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in self._oom_file.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``cmd`` in the container; see ``Sandbox.exec``. One command at a time."""
        if timeout is not None and timeout <= 0:
            raise SandboxError(f"timeout must be > 0, got {timeout}")
        if isinstance(cmd, list) and not cmd:
            raise SandboxError("empty argv")
        with self._lock:
            self._check_open()
            data = stdin.encode() if isinstance(stdin, str) else stdin
            before = self._oom_kills()
            if self.session_mode:
                try:
                    cap = exec_in_session(
                        self,
                        cmd,
                        env={**DEFAULT_ENV, **(env or {})},
                        stdin=data,
                        timeout=timeout or self.limits.wall_s,
                        max_bytes=self.limits.output_bytes,
                    )
                except SandboxError:
                    raise
                except Exception as exc:  # engine gone, container removed underneath us
                    raise SandboxError(f"docker exec failed: {exc}") from exc
                self._update_cwd()
                return self._result(cap, self._oom_kills() > before)
            argv = ["/bin/sh", "-c", _OUTER, "exapt", self._script, *self._session_args(cmd)]
            try:
                cap = self._run(
                    argv, {**DEFAULT_ENV, **(env or {})}, data, timeout or self.limits.wall_s
                )
            except SandboxError:
                raise
            except Exception as exc:  # engine gone, container removed underneath us
                raise SandboxError(f"docker exec failed: {exc}") from exc
            if self._procs_file is not None or cap.timed_out:
                self._kill_all()  # belt and braces: _OUTER already did `kill -9 -1`
            oom = self._oom_kills() > before
            if self._oom_file is None and cap.returncode == 137 and not cap.timed_out:
                oom = True  # no cgroup to ask: SIGKILL from nowhere is most likely the OOM killer
            self._update_cwd()
            return self._result(cap, oom)

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
        channel = FifoChannel(self.io_dir, self.owner)
        try:
            api = self._client.api
            ex = api.exec_create(
                self.container.id,
                ["/bin/sh", "-c", _SERVER_FIFO, "exapt-server", self._script, CWD_FILE],
                stdout=False,
                stderr=False,
                user=USER,
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
                owner=self.owner,
                spare={self._reaper_pid},
            )
        except SessionDied as exc:
            channel.close()
            raise SandboxError(f"docker: {exc}") from exc
        channel.pids = session.keepers - {self._reaper_pid}
        return session

    def _run(
        self, argv: list[str], env: dict[str, str], stdin: bytes | None, timeout: float
    ) -> Captured:
        api = self._client.api
        start = time.monotonic()
        ex = api.exec_create(
            self.container.id,
            argv,
            stdin=stdin is not None,
            user=USER,
            environment=env,
            workdir=WORKSPACE,
        )
        sock = api.exec_start(ex["Id"], socket=True)
        raw: socket.socket = getattr(sock, "_sock", sock)
        if stdin is not None:
            with contextlib.suppress(OSError):
                raw.sendall(stdin)
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_WR)
        bufs = [bytearray(), bytearray(), bytearray()]
        truncated = timed_out = False
        cap = self.limits.output_bytes
        deadline = start + timeout
        pending = b""
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    if timed_out:
                        break  # killed, but the stream did not end: give up on it
                    timed_out = True
                    self._kill_all()
                    deadline = now + 3.0
                raw.settimeout(max(0.01, deadline - now))
                try:
                    chunk = raw.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                pending += chunk
                # multiplexed stream: 8-byte header (stream id, 3 pad, big-endian size)
                while len(pending) >= 8:
                    stream, size = struct.unpack(">BxxxL", pending[:8])
                    if len(pending) < 8 + size:
                        break
                    payload, pending = pending[8 : 8 + size], pending[8 + size :]
                    buf = bufs[stream if stream in (1, 2) else 2]
                    room = cap - len(buf)
                    if len(payload) > room:
                        truncated = True
                        payload = payload[:room]
                    buf += payload
                if len(pending) > 8 + (1 << 20) * 64:  # pragma: no cover - malformed stream
                    raise SandboxError("docker exec stream is malformed")
        finally:
            with contextlib.suppress(OSError):
                sock.close()
        code = None
        for _ in range(200):
            info = api.exec_inspect(ex["Id"])
            if not info.get("Running") and info.get("ExitCode") is not None:
                code = int(info["ExitCode"])
                break
            time.sleep(0.01)
        if code is None:
            self._kill_all()
            code = 137
        return Captured(
            code, bytes(bufs[1]), bytes(bufs[2]), timed_out, truncated, time.monotonic() - start
        )

    def _kill_all(self) -> None:
        """SIGKILL every process of the container but pid 1 (the reaper).

        From the host through the container's cgroup when we can see it; else with a
        ``kill -9 -1`` exec; if even that cannot start (a fork bomb took every pid), by
        restarting the container (the workspace is a host folder and survives).
        """
        if self._session is not None and self._session.alive:
            self._session.kill_commands()
            return
        if self._procs_file is not None:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    pids = [int(p) for p in self._procs_file.read_text().split()]
                except OSError:
                    break
                others = [p for p in pids if p != self._reaper_pid]
                if not others:
                    self._wait_reaped(deadline)
                    return
                for pid in others:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, 9)
                time.sleep(0.005)
        try:
            code, _ = self.container.exec_run(["/bin/sh", "-c", "kill -9 -1"], user=USER)
            if code in (0, 1, None):
                return
        except Exception:
            pass
        with contextlib.suppress(Exception):
            self.container.restart(timeout=0)
            self._find_cgroups()

    def _wait_reaped(self, deadline: float) -> None:
        # Killed processes hold their pids until the reaper collects them; wait for that
        # so the next command is not refused a fork.
        assert self._procs_file is not None
        current = self._procs_file.parent / "pids.current"
        while time.monotonic() < deadline:
            try:
                if int(current.read_text()) <= 1:
                    return
            except (OSError, ValueError):
                return
            time.sleep(0.005)

    def reset(self, files: Mapping[str, str | bytes] | None = None) -> None:
        """Kill what runs, empty the workspace and /tmp, re-seed, start again in /workspace."""
        with self._lock:
            self._check_open()
            self._kill_all()
            clear_tmp = "find /tmp -mindepth 1 -delete"
            if self._session is not None and self._session.alive:
                with contextlib.suppress(SessionDied, OSError):
                    self._session.run(
                        clear_tmp,
                        env=dict(DEFAULT_ENV),
                        cwd=WORKSPACE,
                        stdin=None,
                        timeout=10,
                        max_bytes=1000,
                    )
            else:
                with contextlib.suppress(Exception):
                    self.container.exec_run(["/bin/sh", "-c", clear_tmp], user=USER)
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
