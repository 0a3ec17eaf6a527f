"""Fixtures for the memory tests: the real offline embedder (loaded once per session, as
in a real process), fresh Chroma folders, a real bwrap sandbox factory and the engine's
skill check over it."""

from __future__ import annotations

import pytest

from exapt.engine.skill_check import sandbox_skill_check
from exapt.memory.base import SkillCheck
from exapt.memory.embeddings import Embedder, get_embedder
from exapt.sandbox.base import Limits, Sandbox
from exapt.tasks.base import SandboxFactory


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder("minilm")


@pytest.fixture(scope="session")
def sandbox_factory() -> SandboxFactory:
    try:
        from exapt.sandbox.bwrap import BwrapSandbox, unavailable_reason
    except ImportError as exc:
        pytest.skip(f"the bwrap sandbox backend is not importable: {exc}")
    if reason := unavailable_reason():
        pytest.skip(f"bwrap is unavailable: {reason}")

    def factory(files: dict[str, str | bytes]) -> Sandbox:
        return BwrapSandbox(files, Limits(wall_s=20, cpu_s=20))

    return factory


@pytest.fixture(scope="session")
def skill_check(sandbox_factory: SandboxFactory) -> SkillCheck:
    """What the engine gives memory to judge skills: probes in the sandbox, verdict here."""
    return sandbox_skill_check(sandbox_factory)
