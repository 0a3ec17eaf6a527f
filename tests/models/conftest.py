"""Fixtures for the model tests: a tiny checkpoint and its server, in a temp exapt home.

The tiny checkpoint and its server are built once per session (a few seconds). The real
Gemma test uses the real home instead (``REAL_HOME``), so its one-time conversion is cached
where users find it: ``<home>/models/gemma3-270m/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import exapt  # noqa: F401  (offline environment first)
from exapt.agents.models.local import LocalServer
from exapt.agents.models.tiny import build_tiny_checkpoint

# Captured before any fixture points EXAPT_HOME at a temp folder.
REAL_HOME = Path(os.environ.get("EXAPT_HOME", ".exapt")).expanduser().resolve()


@pytest.fixture(scope="session")
def real_home() -> Path:
    """The exapt home as it was before any test changed EXAPT_HOME."""
    return REAL_HOME


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("exapt-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXAPT_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_home: Path) -> Path:
    return build_tiny_checkpoint(tiny_home / "tiny")


@pytest.fixture(scope="session")
def tiny_server(tiny_checkpoint: Path) -> Iterator[LocalServer]:
    server = LocalServer.shared(tiny_checkpoint)
    with server:
        yield server
