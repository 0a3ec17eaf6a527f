"""The ``local`` backend: plain subprocesses with rlimits. NOT isolation.

Commands see the whole host (files, network, the user's privileges) and run in a temp
folder, not ``/workspace``. It exists for machines with neither bubblewrap nor Docker and is
only ever used when asked for by name; opening one logs a loud warning. What it does
enforce: rlimits (cpu, file size, memory via RLIMIT_AS unless a cgroup does it), a cgroup
when the host allows one, the wall time (the whole process group is killed), the output
cap and a clean environment (``DEFAULT_ENV`` + ``env`` only).

Example:
    with LocalSandbox(files={"a.py": "print(1)"}) as box:
        assert box.exec("python3 a.py").stdout == "1\\n"
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import ClassVar

from exapt.errors import ConfigError
from exapt.sandbox._host import HostSandbox
from exapt.sandbox._process import session_script
from exapt.sandbox.base import Limits

log = logging.getLogger(__name__)
WARNING = (
    "exapt sandbox backend 'local' is NOT isolation: commands run on the host with your "
    "privileges, files and network. Use 'bwrap' or 'docker' for untrusted code."
)


class LocalSandboxWarning(UserWarning):
    """Raised as a warning whenever a ``local`` sandbox is opened."""


class LocalSandbox(HostSandbox):
    """A session of host subprocesses in a temp folder (see module doc: no isolation)."""

    backend: ClassVar[str] = "local"

    def __init__(
        self,
        files: Mapping[str, str | bytes] | None = None,
        limits: Limits | None = None,
        *,
        image: str | None = None,
        ro_binds: Sequence[str] | None = None,
    ) -> None:
        if image is not None:
            raise ConfigError(f"the local backend takes no image (got {image!r})")
        del ro_binds  # the host is visible anyway
        warnings.warn(WARNING, LocalSandboxWarning, stacklevel=3)
        log.warning(WARNING)
        super().__init__(files, limits)
        self.inner_root = str(self.workspace)
        self.cwd = self.inner_root
        self._script = session_script(
            self.limits, memory=self.cgroup is None, nproc=self.cgroup is None
        )

    def _drops_privileges(self) -> bool:
        return False

    def _host_cwd(self) -> str | None:
        return str(self.workspace)

    def _argv(
        self, cmd: str | list[str], env: dict[str, str]
    ) -> tuple[list[str], dict[str, str] | None]:
        return ["/bin/sh", "-c", self._script, "exapt-session", *self._session_args(cmd)], env
