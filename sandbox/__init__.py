"""exapt.sandbox: isolated execution (bubblewrap, Docker, and a non-isolating ``local``).

Example:
    from exapt.sandbox import open_sandbox, Limits
    with open_sandbox("bwrap", files={"a.py": "print(1)"}, limits=Limits(wall_s=10)) as box:
        result = box.exec("python3 a.py")   # ExecResult(exit_code=0, stdout="1\\n", ...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from exapt.errors import ConfigError, UnavailableError
from exapt.registry import resolve
from exapt.sandbox.base import (
    DEFAULT_ENV,
    WORKSPACE,
    ExecResult,
    Interactive,
    Limits,
    Sandbox,
    SandboxError,
    WorkspaceTooLarge,
)

#: short name -> class; a dotted path ``module:Class`` works too (exapt.registry.resolve).
BACKENDS: dict[str, str] = {
    "bwrap": "exapt.sandbox.bwrap:BwrapSandbox",
    "docker": "exapt.sandbox.docker:DockerSandbox",
    "local": "exapt.sandbox.local:LocalSandbox",
}


def available_backends() -> dict[str, str | None]:
    """Backend name -> None if usable on this machine, else why not and what to do.

    ``local`` is always usable but is not isolation (it is never chosen by default).
    """
    from exapt.sandbox import bwrap, docker

    return {
        "bwrap": bwrap.unavailable_reason(),
        "docker": docker.unavailable_reason(),
        "local": None,
    }


def default_backend() -> str:
    """``bwrap`` if usable, else ``docker``; never silently ``local``.

    Raises ``UnavailableError`` saying what to install when neither works.
    """
    from exapt.sandbox import bwrap, docker

    why_bwrap = bwrap.unavailable_reason()
    if why_bwrap is None:
        return "bwrap"
    why_docker = docker.unavailable_reason()
    if why_docker is None:
        return "docker"
    raise UnavailableError(
        f"no isolating sandbox backend works here (bwrap: {why_bwrap}; docker: {why_docker})",
        hint="apt-get install -y bubblewrap (or start Docker and run `exapt sandbox build-image`);"
        " backend 'local' runs commands unisolated if you really mean it",
    )


def open_sandbox(
    backend: str = "default",
    *,
    files: Mapping[str, str | bytes] | None = None,
    limits: Limits | None = None,
    image: str | None = None,
    ro_binds: Sequence[str] | None = None,
) -> Sandbox:
    """Open a sandbox session with its workspace seeded from ``files``.

    ``backend``: "default" (see ``default_backend``), a short name of ``BACKENDS`` or a
    dotted path. ``image``: docker only. ``ro_binds``: host paths bound read-only at the
    same path (bwrap; docker raises ``ConfigError``; local sees the host anyway).
    Raises ``ConfigError`` (unknown backend, bad option) or ``UnavailableError``.

    Example:
        with open_sandbox(files={"a.py": "print(1)"}) as box:
            box.exec("python3 a.py")
    """
    if limits is not None and not isinstance(limits, Limits):
        raise ConfigError(f"limits must be an exapt.sandbox.Limits, got {type(limits).__name__}")
    name = default_backend() if backend == "default" else backend
    cls = resolve("sandbox backend", name, BACKENDS)
    box: Sandbox = cls(files=files, limits=limits, image=image, ro_binds=ro_binds)
    return box


def __getattr__(name: str) -> object:
    # SandboxPool imports threading machinery only when asked for.
    if name == "SandboxPool":
        from exapt.sandbox.pool import SandboxPool

        return SandboxPool
    raise AttributeError(name)


__all__ = [
    "BACKENDS",
    "DEFAULT_ENV",
    "WORKSPACE",
    "ExecResult",
    "Interactive",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxPool",
    "WorkspaceTooLarge",
    "available_backends",
    "default_backend",
    "open_sandbox",
]
