"""From the strings of a ``RunConfig`` to the objects a run uses: tasks, model, agent specs,
sandbox backend, memory. Each function raises ``ConfigError`` (or ``UnavailableError``)
naming the bad value, and creates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from exapt.agents import default_spec_for, load_spec, text_writer
from exapt.agents.models import ModelReply, ScriptedModel, resolve_model
from exapt.agents.models.base import Model
from exapt.agents.spec import AgentSpec
from exapt.engine.skill_check import sandbox_skill_check
from exapt.errors import ConfigError, UnavailableError
from exapt.memory import Memory, open_memory
from exapt.records import Task
from exapt.sandbox import available_backends, default_backend
from exapt.tasks import SandboxFactory, Suite, split_tasks


def select_tasks(
    suite: Suite, name: str, split: str, ids: list[str] | None, limit: int | None
) -> list[Task]:
    """The suite's tasks in ``split``, only ``ids`` (in suite order) if given, the first
    ``limit``. ``ConfigError`` for an unknown id or when nothing is left."""
    tasks = split_tasks(suite.tasks(), split)
    if ids:
        known = {t.id for t in tasks}
        unknown = [i for i in ids if i not in known]
        if unknown:
            sample = ", ".join(sorted(known)[:5])
            raise ConfigError(
                f"no task {', '.join(map(repr, unknown))} in suite {name!r}, split {split!r}",
                hint=f"task ids look like: {sample} ... (see --split all)",
            )
        tasks = [t for t in tasks if t.id in set(ids)]
    if limit is not None:
        tasks = tasks[:limit]
    if not tasks:
        raise ConfigError(f"suite {name!r} has no tasks in split {split!r}", hint="try --split all")
    return tasks


def resolve_model_name(name: str, api_base: str | None) -> Model:
    """``resolve_model`` plus ``scripted:PATH``: a JSON/YAML file of replies for a
    ``ScriptedModel`` (the test double), so tests and demos can drive the CLI offline.

    The file holds a list of replies (answered in order), a mapping ``{substring: reply}``
    (answered by the first key found in the last message), or ``{"replies": ...,
    "supports_tools": bool, "is_base": bool}``. A reply is a string or a ``ModelReply``
    mapping (``text``, ``tool_calls: [{id, name, arguments}]``, token counts, ``cost_usd``).
    """
    if not name.startswith("scripted:"):
        return resolve_model(name, api_base=api_base)
    return load_scripted_model(Path(name.removeprefix("scripted:")))


def load_scripted_model(path: Path) -> ScriptedModel:
    """A ``ScriptedModel`` from a JSON/YAML script file (see ``resolve_model_name``)."""
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except OSError as exc:
        raise ConfigError(f"scripted model: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"scripted model: {path} is not JSON/YAML: {exc}") from exc
    options: dict[str, bool] = {}
    if isinstance(data, dict) and "replies" in data:
        options = {k: bool(data[k]) for k in ("supports_tools", "is_base") if k in data}
        data = data["replies"]
    try:
        replies: Any
        if isinstance(data, list):
            replies = [r if isinstance(r, str) else ModelReply(**r) for r in data]
        elif isinstance(data, dict):
            replies = {k: r if isinstance(r, str) else ModelReply(**r) for k, r in data.items()}
        else:
            raise TypeError(f"expected a list or a mapping of replies, got {type(data).__name__}")
    except (TypeError, ValidationError) as exc:
        raise ConfigError(
            f"scripted model: {path}: bad reply: {exc}",
            hint="each reply is a string or {text, tool_calls: [{id, name, arguments}]}",
        ) from exc
    return ScriptedModel(replies, name=f"scripted:{path}", **options)


def specs_for(agent: str | None, model: Model, tasks: list[Task]) -> dict[str, AgentSpec]:
    """Task id -> spec: the ``--agent`` spec for every task, or each task's default."""
    if agent is not None:
        spec = load_spec(agent)
        return {task.id: spec for task in tasks}
    return {task.id: default_spec_for(model, task) for task in tasks}


def check_backend(name: str | None) -> str:
    """The sandbox backend to use: ``name`` if this machine has it, else the best available
    (``UnavailableError`` when none isolates). A dotted path (``module:Class``) is passed on."""
    if name is None:
        return str(default_backend())
    available = available_backends()
    if name not in available:
        if ":" in name or "." in name:
            return name  # a backend of the user's own: open_sandbox resolves it
        raise ConfigError(
            f"unknown sandbox backend {name!r}",
            hint=f"use one of: {', '.join(available)} (or a dotted path module:Class)",
        )
    reason = available[name]
    if reason is not None:
        raise UnavailableError(f"sandbox backend {name!r} is not usable here: {reason}")
    return name


def open_run_memory(
    choice: bool | None, url: str | None, model: Model, sandbox: SandboxFactory
) -> Memory | None:
    """Long-term memory for a run, or None. ``model`` writes its reflections and insights
    (when it is a chat model); skills are judged in sandboxes from ``sandbox``. ``choice``
    None (the default) = on when Chroma can be imported."""
    if choice is False:
        return None
    try:
        return open_memory(url, write=text_writer(model), check=sandbox_skill_check(sandbox))
    except ImportError as exc:
        if choice:
            raise UnavailableError(
                f"long-term memory is not available: {exc}", hint="run with --no-memory"
            ) from exc
        return None
