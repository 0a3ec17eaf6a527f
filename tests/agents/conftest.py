"""Fixtures for the agent tests: a real bwrap sandbox factory, the toy task, its scorer."""

from __future__ import annotations

import pytest
from agent_helpers import BUGGY, HIDDEN_TEST, HiddenTestScorer

from exapt.sandbox.base import Limits, Sandbox
from exapt.tasks.base import SandboxFactory, Task


@pytest.fixture(scope="session")
def sandbox_factory() -> SandboxFactory:
    try:
        from exapt.sandbox.bwrap import BwrapSandbox, unavailable_reason
    except ImportError as exc:
        pytest.skip(f"the bwrap sandbox backend is not importable: {exc}")
    if reason := unavailable_reason():
        pytest.skip(reason)

    def factory(files: dict[str, str | bytes]) -> Sandbox:
        return BwrapSandbox(files, Limits(wall_s=20, cpu_s=20))

    return factory


@pytest.fixture
def add_task() -> Task:
    return Task(
        id="toy/add",
        suite="toy",
        instruction="Fix the bug in add.py so that add(a, b) returns the sum of a and b.",
        files={"add.py": BUGGY},
        hidden={"test": HIDDEN_TEST, "secret": "HIDDEN-MARKER-1234"},
    )


@pytest.fixture
def scorer() -> HiddenTestScorer:
    return HiddenTestScorer()
