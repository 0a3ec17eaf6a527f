"""The processes of a docker sandbox as the host sees them, through the container's cgroup.

With a local engine the container's cgroup files are visible here: ``cgroup.procs`` lists
every process of the container (so each can be killed from outside, even when a fork bomb
leaves no pid for a ``kill`` exec) and ``memory.oom_control`` / ``memory.events`` count the
OOM kills. ``ContainerProcesses`` is what ``DockerSandbox`` does with them.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from exapt.sandbox._session import Session

USER = "65534:65534"


class ContainerProcesses:
    """Finding, counting and killing a container's processes (a part of ``DockerSandbox``)."""

    container: Any
    _session: Session | None
    _oom_file: Path | None
    _procs_file: Path | None
    _reaper_pid: int

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
