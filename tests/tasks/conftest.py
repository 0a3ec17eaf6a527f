"""Fixtures for the task suites: real bubblewrap sandboxes, and the shared Polyglot data."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.sandbox import Limits, Sandbox
from exapt.tasks import SandboxFactory, sandbox_factory

#: ../shared/datasets/polyglot.jsonl beside the repository (never copied into the project).
POLYGLOT_JSONL = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "polyglot.jsonl"


def _bwrap_reason() -> str | None:
    from exapt.sandbox import bwrap

    return bwrap.unavailable_reason()


@pytest.fixture(scope="session")
def bwrap_ok() -> None:
    reason = _bwrap_reason()
    if reason is not None:
        pytest.skip(f"bubblewrap sandbox unavailable: {reason}")


@pytest.fixture
def factory(bwrap_ok: None) -> SandboxFactory:
    """Opens real bwrap sandboxes (the scorers' own per-exec timeouts apply)."""
    return sandbox_factory("bwrap", limits=Limits(wall_s=60, memory_mb=2048))


class Recorder:
    """A factory that opens real sandboxes and remembers which files each was seeded with."""

    def __init__(self, inner: SandboxFactory) -> None:
        self.inner = inner
        self.seeds: list[dict[str, str | bytes]] = []

    def __call__(self, files: dict[str, str | bytes]) -> Sandbox:
        self.seeds.append(dict(files))
        return self.inner(files)


@pytest.fixture
def recorder(factory: SandboxFactory) -> Recorder:
    return Recorder(factory)


@pytest.fixture(scope="session")
def polyglot_path() -> Path:
    if not POLYGLOT_JSONL.is_file():
        pytest.skip(f"{POLYGLOT_JSONL} is absent (the shared Polyglot sample is not checked out)")
    return POLYGLOT_JSONL


def as_bytes(files: dict[str, str]) -> dict[str, bytes]:
    return {path: text.encode() for path, text in files.items()}


def _docker_reason() -> str | None:
    from exapt.sandbox import docker

    return docker.unavailable_reason()


@pytest.fixture(
    params=[
        pytest.param("bwrap", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
    ]
)
def any_factory(request: pytest.FixtureRequest) -> SandboxFactory:
    """Real sandboxes of each isolating backend (the hostile suite runs on both)."""
    reason = _bwrap_reason() if request.param == "bwrap" else _docker_reason()
    if reason is not None:
        pytest.skip(f"sandbox backend {request.param} unavailable: {reason}")
    return sandbox_factory(request.param, limits=Limits(wall_s=60, memory_mb=2048))
