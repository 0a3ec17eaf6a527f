"""Where a run's files live: one home folder (``EXAPT_HOME``, default ``./.exapt``).

Layout (DESIGN.md): ``runs/<run_id>/``, ``archive/<name>/``, ``memory/``, ``policies/``,
``models/`` and the trajectory database ``trajectories.sqlite``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def home() -> Path:
    """The exapt home folder, created on first use."""
    path = Path(os.environ.get("EXAPT_HOME", ".exapt")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def subdir(name: str) -> Path:
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    return subdir("runs")


def models_dir() -> Path:
    return subdir("models")


def memory_dir() -> Path:
    return subdir("memory")


def archive_dir() -> Path:
    return subdir("archive")


def policies_dir() -> Path:
    return subdir("policies")


def trajectories_db() -> Path:
    return home() / "trajectories.sqlite"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
