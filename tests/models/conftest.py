"""Fixtures for the model tests: a tiny checkpoint, served by both local engines, in a temp
exapt home.

The tiny checkpoint, its GGUF conversion and its servers are built once per session (seconds).
The real Gemma tests use the real home instead (``REAL_HOME``), so its one-time preparation is
cached where users find it: ``<home>/models/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import exapt  # noqa: F401  (offline environment first)
from exapt.agents.models.engine import LocalEngine
from exapt.agents.models.llama_cpp import LlamaCpp, find_llama_cpp
from exapt.agents.models.local import LocalModel
from exapt.agents.models.tiny import build_tiny_checkpoint
from exapt.agents.models.transformers_engine import TransformersServer
from exapt.errors import UnavailableError

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
def llama_cpp() -> LlamaCpp:
    """The llama.cpp toolchain; skips (naming what is missing) where it is not built."""
    try:
        return find_llama_cpp()
    except UnavailableError as exc:
        pytest.skip(f"llama.cpp is not built on this machine: {exc}")


@pytest.fixture(scope="session")
def tiny_server(tiny_checkpoint: Path) -> Iterator[TransformersServer]:
    """The transformers engine's server for the tiny checkpoint."""
    server: TransformersServer = TransformersServer.shared(tiny_checkpoint)
    with server:
        yield server


@pytest.fixture(scope="session")
def tiny_engine(tiny_checkpoint: Path, llama_cpp: LlamaCpp) -> Iterator[LocalEngine]:
    """The llama engine for the tiny checkpoint (converted to GGUF once), started."""
    engine = LocalEngine.shared(tiny_checkpoint)
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture()
def tiny_llama(tiny_engine: LocalEngine, tiny_checkpoint: Path) -> LocalModel:
    """``local:<tiny>`` on the llama engine."""
    return LocalModel(tiny_checkpoint, engine="llama")
