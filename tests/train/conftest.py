"""Fixtures for the self-training tests: a home folder, stores filled by scripted runs, and a
tiny checkpoint built in the test session (no model ships small enough; nothing downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import exapt  # noqa: F401  (offline environment first)

from .helpers import fill_chat_store, fill_function_store, write_chat_suite, write_function_suite

# The exapt home as it was before any test changed EXAPT_HOME: the real Gemma checkpoint is
# converted (once, ~1.5 min) and cached there, where users find it.
REAL_HOME = Path(os.environ.get("EXAPT_HOME", ".exapt")).expanduser().resolve()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("EXAPT_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def backend() -> str:
    """bubblewrap where it works (CI), else the unisolated ``local`` backend."""
    from exapt.sandbox import available_backends

    return "bwrap" if available_backends().get("bwrap") is None else "local"


@pytest.fixture(scope="session")
def function_home(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Path:
    """A home whose store holds two scripted completion runs over the toy function suite."""
    home = tmp_path_factory.mktemp("function-home")
    suite = write_function_suite(home / "functions.jsonl")
    fill_function_store(home, suite, backend)
    return home


@pytest.fixture(scope="session")
def chat_home(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Path:
    """A home whose store holds a scripted tool-coder run (two trials, a lesson memory)."""
    home = tmp_path_factory.mktemp("chat-home")
    suite = write_chat_suite(home / "chat.jsonl")
    fill_chat_store(home, suite, backend)
    return home


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exapt.agents.models.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="session")
def tiny_long(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint with a 4096-token context (rotary positions: only the config says
    how far it goes), for chat rows: its byte-level tokenizer makes the agents' prompts long."""
    import json
    import shutil

    target = tmp_path_factory.mktemp("tiny-long") / "ckpt"
    shutil.copytree(tiny, target)
    config = json.loads((target / "config.json").read_text())
    config["max_position_embeddings"] = 4096
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.fixture(scope="session")
def tiny_adapter(function_home: Path, tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter (r=16) trained for two steps on the tiny checkpoint."""
    from exapt.evolve.training.datasets import DatasetConfig, build_dataset
    from exapt.evolve.training.train import TrainConfig, train_adapter
    from exapt.memory.trajectories import TrajectoryStore

    with TrajectoryStore(function_home / "trajectories.sqlite") as store:
        built = build_dataset(store, DatasetConfig())
    out = tmp_path_factory.mktemp("adapter")
    return train_adapter(built, tiny, out, TrainConfig(max_steps=2), progress=False).adapter_dir
