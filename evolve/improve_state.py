"""The persisted state of an ``exapt improve`` run: ``<home>/runs/<id>/improve.json`` (config,
the base's and every round's figures, the phases done), made by ``new_state``, written
atomically by ``save_state`` after each phase and read back by ``load_state`` (``saved_config``
for ``--resume``); ``exclusive`` holds the run's lock, so one process at a time runs it;
``evaluation_of`` finds the gate or report figures of a policy (None: the base) in a state.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from exapt.errors import ConfigError
from exapt.evolve.improve_config import IMPROVE_SCHEMA, ImproveConfig
from exapt.paths import atomic_write, runs_dir
from exapt.records import Task


def new_state(
    run_id: str,
    line: str,
    config: ImproveConfig,
    base_checkpoint: Path,
    tasks: dict[str, list[Task]],
) -> dict[str, Any]:
    """The state of a run not started yet."""
    return {
        "schema": IMPROVE_SCHEMA,
        "run_id": run_id,
        "line": line,
        "config": config.model_dump(mode="json", by_alias=True),
        "base_checkpoint": str(base_checkpoint),
        "splits": {s: len(t) for s, t in tasks.items()},
        "status": "new",
        "created": time.time(),
        "base": {},
        "rounds": [],
    }


def load_state(run_dir: Path) -> dict[str, Any] | None:
    """The state saved in ``run_dir`` (None: none); ``ConfigError`` when it cannot be read or
    was written by a newer exapt."""
    path = run_dir / "improve.json"
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable improve state: {exc}") from exc
    if state.get("schema", 0) > IMPROVE_SCHEMA:
        raise ConfigError(f"{path} was written by a newer exapt", hint="upgrade exapt")
    return state


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(run_dir / "improve.json", json.dumps(state, indent=2) + "\n")


def saved_config(run_id: str) -> ImproveConfig:
    """The config of improve run ``run_id``, from its ``improve.json``; ``ConfigError`` if none."""
    path = runs_dir() / run_id / "improve.json"
    try:
        saved = json.loads(path.read_text())
        return ImproveConfig.model_validate(saved["config"])
    except (OSError, ValueError, KeyError, ValidationError) as exc:
        raise ConfigError(
            f"no improve run {run_id!r} to resume ({path}: {exc})",
            hint="see the runs with `exapt runs list`",
        ) from exc


@contextlib.contextmanager
def exclusive(run_dir: Path, run_id: str) -> Iterator[None]:
    """Hold the lock of the run in ``run_dir``; ``ConfigError`` if another process holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"improve run {run_id} is running in another process",
                hint="wait for it, or stop it before resuming",
            ) from exc
        yield


def evaluation_of(
    state: dict[str, Any], policy: str | None, which: Literal["gate", "report"], run_id: str
) -> dict[str, Any]:
    """The ``which`` evaluation of ``policy`` (None: the base) in ``state``; ``ConfigError``
    when the policy is not one of this run's."""
    if policy is None:
        return dict(state["base"][which])
    for r in state["rounds"]:
        if r.get("policy") == policy:
            return dict(r[which])
    raise ConfigError(f"policy {policy!r} is not one of improve run {run_id}'s")
