"""Launching Debian's Chromium for Playwright: the command line, the bubblewrap jail, the
process tree (for memory figures and for killing a browser that hangs).

Playwright starts ``executable_path`` with its own flags and talks to the browser over a
pipe (``--remote-debugging-pipe``, file descriptors 3 and 4), never over the network. So
the executable can be a small launcher that records its pid and ``exec``s Chromium inside
bubblewrap with an empty network namespace (only a private loopback), new pid/ipc/uts
namespaces, the host's ``/usr`` read-only, ``/etc`` reduced to fonts and Chromium's own
settings (no passwd, no ssh), a private ``/tmp`` and ``/dev/shm``, no environment but
``HOME`` and ``PATH``, as uid/gid 65534 without capabilities (``setpriv``, as the ``bwrap``
sandbox backend does), dying with its launcher. Pages reach nothing but what the browser
environment answers through Playwright's routing (see ``_site.py``).

``isolation="none"`` starts Chromium directly (still with a clean environment and the
routing): no jail around the browser process, for machines without bubblewrap.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import psutil

from exapt.errors import UnavailableError
from exapt.sandbox._privs import SETPRIV, setpriv_argv

CHROMIUM = "/usr/bin/chromium"
#: Flags from ENVIRONMENT.md: no background traffic, no updates, no sync, no GPU.
#: ``--no-sandbox``: Chromium's own sandbox needs user namespaces it cannot get as root
#: inside bubblewrap; bubblewrap is the boundary instead.
DEFAULT_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    # as BrowserGym's env launches it (scrollbars visible in screenshots)
    "--disable-features=OverlayScrollbars,ExtendedOverlayScrollbars",
)
#: Variable naming the file the launcher writes its pid to.
PIDFILE_ENV = "EXAPT_BROWSER_PIDFILE"
_ETC_BINDS = ("fonts", "chromium", "chromium.d", "ld.so.cache", "localtime")


def unavailable_reason(executable: str = CHROMIUM, isolation: str = "bwrap") -> str | None:
    """None if a browser can be started this way here, else what is missing."""
    if not os.access(executable, os.X_OK):
        return f"{executable} is missing: apt-get install -y chromium"
    if isolation == "bwrap":
        if shutil.which("bwrap") is None:
            return "bubblewrap is missing: apt-get install -y bubblewrap"
        if os.geteuid() == 0 and not os.access(SETPRIV, os.X_OK):
            return f"{SETPRIV} (util-linux) is missing"
    return None


def jail_argv(executable: str = CHROMIUM) -> list[str]:
    """The bubblewrap command line Chromium runs under (its own flags follow)."""
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [
        bwrap,
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "exapt-browser",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / top
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), f"/{top}"]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), f"/{top}"]
    argv += ["--perms", "0755", "--dir", "/etc"]
    for name in _ETC_BINDS:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--ro-bind-try", "/var/cache/fontconfig", "/var/cache/fontconfig"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
    argv += ["--clearenv", "--setenv", "HOME", "/tmp", "--setenv", "PATH", "/usr/bin:/bin"]
    argv += ["--chdir", "/tmp"]
    if os.geteuid() == 0:
        argv += setpriv_argv()
    else:
        argv += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
    return [*argv, executable]


_lock = threading.Lock()
_launchers: dict[tuple[str, str], Path] = {}


def launcher(executable: str = CHROMIUM, isolation: str = "bwrap") -> Path:
    """A launcher script for Playwright's ``executable_path``: it writes its pid to
    ``$EXAPT_BROWSER_PIDFILE`` and ``exec``s Chromium (in the jail for ``bwrap``). Made
    once per process and kind; removed at exit. ``UnavailableError`` if it cannot run."""
    if isolation not in ("bwrap", "none"):
        raise ValueError(f"isolation must be 'bwrap' or 'none', got {isolation!r}")
    reason = unavailable_reason(executable, isolation)
    if reason is not None:
        raise UnavailableError(f"cannot start a browser: {reason}")
    with _lock:
        key = (executable, isolation)
        if key in _launchers and _launchers[key].exists():
            return _launchers[key]
        folder = Path(tempfile.mkdtemp(prefix=f"exapt-browser-{os.getpid()}-"))
        atexit.register(shutil.rmtree, folder, True)
        command = jail_argv(executable) if isolation == "bwrap" else [executable]
        script = folder / "chromium"
        script.write_text(
            "#!/bin/sh\n"
            f'[ -n "${PIDFILE_ENV}" ] && echo $$ > "${PIDFILE_ENV}"\n'
            f'exec {shlex.join(command)} "$@"\n'
        )
        script.chmod(0o755)
        folder.chmod(0o755)
        _launchers[key] = script
        return script


def read_pid(pidfile: Path) -> int | None:
    """The pid a launcher wrote, or None."""
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and all its descendants that are alive."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def memory_bytes(pid: int) -> int:
    """Memory of ``pid``'s whole process tree, in bytes: the sum of each process's PSS
    (shared pages split between the processes sharing them; RSS would count Chromium's
    shared libraries once per process)."""
    total = 0
    for process in tree(pid):
        try:
            total += process.memory_full_info().pss
        except psutil.Error:
            continue
    return total


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants (a jailed browser also dies with its launcher)."""
    for process in reversed(tree(pid)):
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue
