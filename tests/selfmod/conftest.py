"""Fixtures of the self-modification tests: a home folder per test, the backends to run
variant code on (each skips naming what is missing), a fake API key in the host's env."""

from __future__ import annotations

from pathlib import Path

import pytest
from selfmod_helpers import FAKE_KEY


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("EXAPT_HOME", str(path))
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)  # the host holds a key; no sandbox may
    return path


def _need(name: str) -> str:
    from exapt.sandbox import available_backends

    reason = available_backends().get(name)
    if reason is not None:
        pytest.skip(f"sandbox backend {name} unavailable: {reason}")
    return name


@pytest.fixture
def bwrap() -> str:
    return _need("bwrap")


@pytest.fixture(params=[pytest.param("bwrap", marks=pytest.mark.bwrap),
                        pytest.param("docker", marks=pytest.mark.docker)])  # fmt: skip
def backend(request: pytest.FixtureRequest) -> str:
    """bwrap and docker: variant code runs the same way on both."""
    return _need(str(request.param))
