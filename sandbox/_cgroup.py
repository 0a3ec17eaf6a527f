"""A memory + pids cgroup per sandbox (cgroup v1 or v2), when the host lets us make one.

rlimits bound each process; only a cgroup bounds the sandbox as a whole (a fork bomb of
128 small processes, or many processes each under RLIMIT_AS), counts OOM kills, and lists
every process so a timeout can kill all of them. Made below our own cgroup, so the limits
of whoever runs exapt still apply. Without write access (non-root, no delegation) ``make``
returns ``None`` and the backends fall back to rlimits alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")
PREFIX = "exapt-"


def _own_path(controller: str) -> str | None:
    """Our cgroup path for ``controller`` (v1) or the unified one (controller "")."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, ctrls, path = line.split(":", 2)
        if (controller and controller in ctrls.split(",")) or (not controller and _id == "0"):
            return path
    return None


class Cgroup:
    """One cgroup (v1: a memory and a pids directory; v2: one directory)."""

    def __init__(self, dirs: dict[str, Path], version: int) -> None:
        self.dirs = dirs
        self.version = version

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes its pid to, to join."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup so far."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            text = (self.dirs["memory"] / name).read_text()
        except (OSError, KeyError):
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def kill_all(self, timeout: float = 2.0) -> bool:
        """SIGKILL every process in the cgroup until it is empty; True when empty."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def remove(self) -> None:
        self.kill_all()
        for d in self.dirs.values():
            # rmdir fails while a zombie is still being reaped; retry (up to 3 s under load).
            for _ in range(300):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def make(memory_mb: int, pids: int) -> Cgroup | None:
    """A fresh cgroup limited to ``memory_mb`` (swap included) and ``pids``, or None."""
    if os.geteuid() != 0:
        return None
    name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    limit = str(memory_mb * 1024 * 1024)
    if (_ROOT / "cgroup.controllers").exists():  # v2, unified
        own = _own_path("")
        if own is None:
            return None
        base = _ROOT / own.lstrip("/")
        d = base / name
        try:
            d.mkdir()
        except OSError:
            return None
        group = Cgroup({"memory": d, "pids": d}, 2)
        ok = (
            _write(d / "memory.max", limit)
            and _write(d / "pids.max", str(pids))
            and (_write(d / "memory.swap.max", "0") or True)
        )
        if not ok:
            group.remove()
            return None
        return group
    dirs: dict[str, Path] = {}
    for ctrl in ("memory", "pids"):
        own = _own_path(ctrl)
        mount = _ROOT / ctrl
        if own is None or not mount.is_dir():
            break
        d = mount / own.lstrip("/") / name
        try:
            d.mkdir()
        except OSError:
            break
        dirs[ctrl] = d
    group = Cgroup(dirs, 1)
    if len(dirs) != 2:
        group.remove()
        return None
    ok = _write(dirs["memory"] / "memory.limit_in_bytes", limit) and _write(
        dirs["pids"] / "pids.max", str(pids)
    )
    # Without memsw the sandbox could push its pages to swap and exceed the limit.
    _write(dirs["memory"] / "memory.memsw.limit_in_bytes", limit)
    if not ok:
        group.remove()
        return None
    return group


def cleanup_stale() -> None:
    """Remove empty ``exapt-<pid>-*`` cgroups whose owning process is gone (after a crash)."""
    for ctrl in ("memory", "pids", ""):
        own = _own_path(ctrl)
        if own is None:
            continue
        base = (_ROOT / ctrl if ctrl else _ROOT) / own.lstrip("/")
        with contextlib.suppress(OSError):
            for d in base.glob(f"{PREFIX}*"):
                pid = d.name[len(PREFIX) :].split("-")[0]
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    Cgroup({"x": d}, 1).remove()
