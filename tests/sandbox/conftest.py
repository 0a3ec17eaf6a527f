"""Fixtures of the sandbox suites: a backend parameter that skips when unavailable, small
limits so hostile programs end fast, and a check that nothing of a sandbox is left."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exapt.sandbox import Limits, Sandbox, open_sandbox


def require_backend(name: str) -> None:
    """Skip the calling test, naming what is missing, if backend ``name`` is unavailable."""
    reason = _reasons().get({FRESH: "bwrap", DOCKER_EXEC: "docker"}.get(name, name))
    if reason is not None:
        pytest.skip(f"sandbox backend {name} unavailable: {reason}")


_cache: dict[str, str | None] = {}


def _reasons() -> dict[str, str | None]:
    from exapt.sandbox import available_backends

    if not _cache:
        _cache.update(available_backends())
    return _cache


SMALL = Limits(wall_s=3, cpu_s=2, memory_mb=256, pids=64, disk_mb=16, output_bytes=100_000)

FRESH = "exapt.sandbox.bwrap:BwrapFreshSandbox"  # bwrap without session mode
DOCKER_EXEC = "exapt.sandbox.docker:DockerExecSandbox"  # docker without session mode
ISOLATING = [
    pytest.param("bwrap", marks=pytest.mark.bwrap),
    pytest.param(FRESH, marks=pytest.mark.bwrap, id="bwrap-fresh"),
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param(DOCKER_EXEC, marks=pytest.mark.docker, id="docker-exec"),
]
ALL = [*ISOLATING, "local"]


@pytest.fixture(params=ALL)
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend (the conformance suite)."""
    require_backend(request.param)
    return str(request.param)


@pytest.fixture(params=ISOLATING)
def isolating(request: pytest.FixtureRequest) -> str:
    """The backends that isolate (the escape suite)."""
    require_backend(request.param)
    return str(request.param)


def leftovers() -> list[str]:
    """What this test process's sandboxes left behind: state folders, cgroups, containers."""
    pid = os.getpid()
    found = [
        str(p)
        for p in Path(tempfile.gettempdir()).glob(f"exapt-*-{pid}-*")
        if not p.name.startswith(f"exapt-bwrap-{pid}-etc-")  # shared, removed at exit
    ]
    for ctrl in ("memory", "pids", ""):
        # os.walk, not glob: cgroups of other sandboxes come and go while we look (glob
        # raises FileNotFoundError on a folder removed mid-walk; walk skips it).
        for root, dirs, _ in os.walk(Path("/sys/fs/cgroup") / ctrl, onerror=lambda _: None):
            found += [f"{root}/{d}" for d in dirs if d.startswith(f"exapt-{pid}-")][:5]
    from exapt.sandbox import _docker_client as dockmod

    if dockmod._client is not None:
        for c in dockmod._client.containers.list(
            all=True, filters={"label": [f"{dockmod.LABEL}=1", f"exapt.pid={pid}"]}
        ):
            if c.labels.get("exapt.host") == socket.gethostname():
                found.append(f"container {c.short_id}")
    return found


@pytest.fixture
def clean_host() -> Iterator[None]:
    """Fail the test if its sandboxes left anything behind once closed."""
    before = set(leftovers())
    yield
    after = set(leftovers()) - before
    assert not after, f"left behind: {sorted(after)}"


@pytest.fixture
def need() -> Callable[[str], None]:
    """``need("docker")`` skips the test, naming what is missing, if docker is unavailable."""
    return require_backend


@pytest.fixture
def small() -> Limits:
    """Small limits: hostile programs end within seconds."""
    return SMALL


@pytest.fixture
def box(backend: str) -> Iterator[Sandbox]:
    with open_sandbox(backend, files={"a.py": "print(1)\n"}, limits=SMALL) as sandbox:
        yield sandbox
