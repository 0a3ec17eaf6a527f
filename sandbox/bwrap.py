"""The ``bwrap`` backend: bubblewrap namespaces. The default on Linux.

With a cgroup (root), a sandbox is one long-lived bubblewrap whose small server forks each
command (``_session.py``: ~1 fork per command instead of new namespaces and ~15 mounts);
``/tmp`` then lives as long as the sandbox (``reset`` empties it). Without one, or with
``BwrapFreshSandbox``, every command gets a fresh bubblewrap.

Isolation either way: new pid/ipc/uts/net(/cgroup) namespaces (no network but an empty
loopback), the host's ``/usr`` read-only and a handful of ``/etc`` files (never passwd,
shadow, ssh), a private ``/tmp`` tmpfs of ``Limits.disk_mb``, only ``/workspace`` writable,
``--die-with-parent``, ``--new-session`` (no terminal injection), an empty environment plus
``DEFAULT_ENV`` + ``env``. Commands run as uid/gid 65534 with no capabilities and
``no_new_privs``: as root we drop privileges with ``setpriv`` inside the namespaces, because
bwrap's own ``--uid`` would map to root outside. Limits: rlimits (cpu, file size) set by the
session shell; memory and pids by a cgroup when the host allows one, else by rlimits.
Every process of a command is killed when it ends or times out (through the cgroup, or
with the pid namespace of a fresh bubblewrap).

Example:
    with BwrapSandbox(files={"a.py": "print(1)"}) as box:
        assert box.exec("python3 a.py").stdout == "1\\n"
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from exapt.errors import ConfigError, UnavailableError
from exapt.sandbox._channels import ProcessChannel, SessionDied
from exapt.sandbox._host import HostSandbox
from exapt.sandbox._privs import SETPRIV, setpriv_argv
from exapt.sandbox._process import session_script
from exapt.sandbox._session import (
    _SERVER,
    DROP,
    IO_INNER,
    SERVER_UID,
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

CWD_FILE = "/run/exapt/cwd"
# /etc entries programs need to start (linker cache, java/alternatives links, time zone).
# Deliberately absent: passwd/group (our own are bound), shadow, ssh, sudoers, machine-id.
_ETC = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "mime.types",
    "java-17-openjdk",
    "ssl",
    "ca-certificates",
    "protocols",
    "services",
    "nsswitch.conf",
)
_ETC_NET = ("resolv.conf", "hosts", "gai.conf")
_PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"
_HOSTS = "127.0.0.1\tlocalhost exapt\n::1\tlocalhost\n"


def unavailable_reason() -> str | None:
    """None if bwrap can be used here, else what is missing and what to do."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed: apt-get install -y bubblewrap"
    if os.geteuid() == 0 and not os.access(SETPRIV, os.X_OK):
        return f"{SETPRIV} (util-linux) is missing: needed to drop root inside the sandbox"
    return None


class BwrapSandbox(HostSandbox):
    """A session whose commands each run in a fresh bubblewrap sandbox (see module doc)."""

    backend: ClassVar[str] = "bwrap"
    inner_root = WORKSPACE
    reserved_pids: ClassVar[int] = 4  # launcher/bwrap, bwrap's pid 1, setpriv->server, spare
    #: one long-lived bwrap per sandbox (session mode) when a cgroup allows it
    fast: ClassVar[bool] = True

    def __init__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
        *,
        image: str | None = None,
        ro_binds: Sequence[str] | None = None,
    ) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise UnavailableError(
                f"bwrap backend unavailable: {reason}", hint="or run `exapt doctor`"
            )
        if image is not None:
            raise ConfigError(
                f"the bwrap backend runs the host's /usr and takes no image (got {image!r})",
                hint="use backend 'docker' for images, or drop image=",
            )
        self.ro_binds = [_check_bind(p) for p in ro_binds or ()]
        self._bwrap = shutil.which("bwrap") or "bwrap"
        self._session: Session | None = None
        super().__init__(files, limits)
        try:
            self._static = self._static_args(_etc_dir(self.limits.network))
            self._script = session_script(
                self.limits, memory=self.cgroup is None, nproc=self.cgroup is None
            )
        except BaseException:
            self.close()
            raise

    def _static_args(self, etc: Path) -> list[str]:
        lim = self.limits
        args = [
            self._bwrap,
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "exapt",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        if not lim.network:
            args.insert(1, "--unshare-net")
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"/{top}"]
            elif host.is_dir():
                args += ["--ro-bind", str(host), f"/{top}"]
        # One bind of a prepared copy: every extra mount costs ~1 ms per command.
        args += ["--ro-bind", str(etc), "/etc"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(lim.disk_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", "/tmp"]
        args += ["--symlink", "/tmp", "/var/tmp"]
        made = {"/", "/tmp", "/usr", "/etc", "/run", "/proc", "/dev", "/var"}
        for path in self.ro_binds:
            # Parents bwrap would create are 0700 root's: make them traversable for nobody.
            for parent in reversed(Path(path).parents):
                p = str(parent)
                if p not in made and not p.startswith(("/usr/", "/etc/", "/proc/", "/dev/")):
                    args += ["--perms", "0755", "--dir", p]
                    made.add(p)
            args += ["--ro-bind", path, path]
        args += ["--bind", str(self.workspace), WORKSPACE]
        # bwrap makes missing parents 0700 (root's): create them traversable first
        args += ["--perms", "0755", "--dir", "/run", "--perms", "0755", "--dir", "/run/exapt"]
        args += ["--bind", str(self.cwd_file), CWD_FILE]
        args += ["--chdir", WORKSPACE]
        if os.geteuid() != 0:
            # Unprivileged bwrap: a user namespace maps 65534 inside to the caller outside.
            args += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
        return args

    def _inner_cwd_file(self) -> str:
        return CWD_FILE

    # -- session mode: one bwrap per sandbox, one fork per command (needs a cgroup) ------

    @property
    def session_mode(self) -> bool:
        return self.fast and self.cgroup is not None and os.geteuid() == 0

    def _start_session(self) -> Session:
        """bwrap with the server as uid 65533 (CAP_SETUID/SETGID only, to drop each command
        to 65534) and the io folder 0700 of that uid bound read-only (see ``_session``)."""
        assert self.cgroup is not None
        io_dir = self.state / "io"
        shutil.rmtree(io_dir, ignore_errors=True)
        io_dir.mkdir(mode=0o700)
        server = (SERVER_UID, SERVER_UID)
        os.chown(io_dir, *server)
        argv, _ = self._argv("true", dict(DEFAULT_ENV))
        cut = argv.index(SETPRIV)
        argv = [
            *self._launch_prefix(),
            *argv[:cut],
            "--ro-bind",
            str(io_dir),
            IO_INNER,
            *setpriv_argv(SERVER_UID, "-all,+setuid,+setgid", ambient=True),
            "/bin/sh",
            "-c",
            _SERVER,
            "exapt-server",
            self._script,
            CWD_FILE,
            DROP,
        ]
        try:
            return Session(ProcessChannel(argv), io_dir=io_dir, cgroup=self.cgroup, owner=server)
        except SessionDied as exc:
            raise SandboxError(f"bwrap: {exc}") from exc

    def spawn(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Interactive:
        """Start ``cmd`` with pipes (``Sandbox.spawn``): forked by the session's server in
        session mode, else a fresh bubblewrap. The sandbox is busy until it is closed."""
        if not self.session_mode:
            return super().spawn(cmd, timeout=timeout, env=env)
        check_request(cmd, timeout)
        assert self.cgroup is not None
        self._lock.acquire()
        if self._closed:
            self._lock.release()
            self._check_open()
        return session_spawn(
            self,
            cmd,
            env=env,
            timeout=timeout,
            oom_kills=self.cgroup.oom_kills,
            release=self._lock.release,
        )

    def exec(
        self,
        cmd: str | list[str],
        *,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        stdin: str | bytes | None = None,
    ) -> ExecResult:
        """Run ``cmd``; see ``Sandbox.exec``. One command at a time."""
        if not self.session_mode:
            return super().exec(cmd, timeout=timeout, env=env, stdin=stdin)
        check_request(cmd, timeout)
        assert self.cgroup is not None
        with self._lock:
            self._check_open()
            return session_exec(
                self, cmd, env=env, stdin=stdin, timeout=timeout, oom_kills=self.cgroup.oom_kills
            )

    def _kill_for_reset(self) -> None:
        # the session (if clear_tmp kept it) stays: reset kills only its commands
        if self._session is not None and self._session.alive:
            self._session.kill_commands()
        else:
            super()._kill_for_reset()

    def reset(self, files: Mapping[str, str | bytes] | None = None) -> None:
        """Kill what runs, empty the workspace and the session's /tmp, re-seed."""
        with self._lock:
            self._session = clear_tmp(self._session)
        super().reset(files)

    def close(self) -> None:
        """Kill the session and every process, remove what it made. Idempotent."""
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
            self._session = None
        super().close()

    def _argv(
        self, cmd: str | list[str], env: dict[str, str]
    ) -> tuple[list[str], dict[str, str] | None]:
        argv = [*self._static, "--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        if os.geteuid() == 0:
            argv += setpriv_argv()
        argv += ["/bin/sh", "-c", self._script, "exapt-session", *self._session_args(cmd)]
        return argv, {}


_etc_lock = threading.Lock()
_etc_dirs: dict[bool, Path] = {}


def _etc_dir(network: bool) -> Path:
    """A private /etc for the sandbox, made once per process: copies of the ``_ETC`` entries
    (``ssl/private`` left out) and our own passwd/group/hosts. Removed at exit."""
    with _etc_lock:
        if network in _etc_dirs:
            return _etc_dirs[network]
        state = Path(tempfile.mkdtemp(prefix=f"exapt-bwrap-{os.getpid()}-etc-"))
        atexit.register(shutil.rmtree, state, True)
        etc = state / "etc"
        etc.mkdir()
        for name in _ETC + (_ETC_NET if network else ()):
            src = Path("/etc") / name
            with contextlib.suppress(OSError, shutil.Error):
                if src.is_dir() and not src.is_symlink():
                    shutil.copytree(src, etc / name, symlinks=True, ignore=_IGNORE)
                elif src.exists() or src.is_symlink():
                    shutil.copy2(src, etc / name, follow_symlinks=False)
        texts = {"passwd": _PASSWD, "group": _GROUP}
        if not network:
            texts["hosts"] = _HOSTS
        for name, text in texts.items():
            (etc / name).write_text(text)
        state.chmod(0o755)
        _etc_dirs[network] = etc
        return etc


_IGNORE = shutil.ignore_patterns("private")


def _check_bind(path: str) -> str:
    p = Path(path)
    if not p.is_absolute() or not p.exists():
        raise ConfigError(
            f"ro_binds: {path!r} is not an existing absolute path",
            hint="pass host folders that exist, e.g. ro_binds=['/root/.cargo']",
        )
    if str(p.resolve()) in ("/", "/proc", "/sys", "/dev") or str(p.resolve()).startswith("/proc/"):
        raise ConfigError(f"ro_binds: refusing to expose {path!r} to the sandbox")
    return str(p)


class BwrapFreshSandbox(BwrapSandbox):
    """A fresh bubblewrap sandbox for every command, never a session: new namespaces and a
    new /tmp each time (~tens of ms slower per command). What ``bwrap`` falls back to
    without a cgroup. Open it as ``open_sandbox("exapt.sandbox.bwrap:BwrapFreshSandbox")``.
    """

    fast: ClassVar[bool] = False
