"""``AgentSpec``: the genome of an agent — graph, model, prompts, tools, limits, options.

A spec is one YAML file. Prompts are Jinja templates (``StrictUndefined``), written inline
or as ``file:PATH`` (relative to the YAML); they are read at load time, so a loaded spec
holds every prompt's text and ``variant_id()`` (the hash of the content) changes when any
prompt changes. Format::

    name: my_agent                      # required
    description: what it is for
    graph: tool_coder                   # tool_coder | text_coder | completion | agent.py:build
    model: openai/gpt-4o-mini           # optional default model
    prompts:                            # name -> template text, or file:PATH
      system: file:prompts/system.md.j2
      instance: "# Task {{ task.id }}\n{{ task.instruction }}\n{% include 'memory' %}"
    tools: [shell, view, create, str_replace, submit]
    limits: {max_steps: 30, max_tokens: 200000, max_cost_usd: 1.0, max_wall_s: 900}
    graph_options: {temperature: 0.0, tool_timeout_s: 60}
    memory: {enabled: true, reflections_k: 3, skills_k: 3, insights_k: 5}

Example:
    spec = load_spec("my_agent.yaml")  # or built-in: "tool_coder", "text_coder", "completion"
    spec.variant_id()  # "3f2a9c0d1e4b5a67"

Where a graph runs: a built-in graph runs in the exapt process (it is our code). A graph named
by a file of the spec's folder (``graph: agent.py:build``) is the agent's *own code*: load_spec
reads every ``*.py`` file of the folder into ``code`` (so the id covers it), and the runner
runs it as a process inside the task's sandbox (``exapt.agents.remote``); the exapt process
never imports it. A dotted ``package.module:build`` is host code the user installed (a
plugin): it is imported, so evolve never accepts it from a variant.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exapt.agents.budget import Budget
from exapt.agents.models.base import Model
from exapt.errors import ConfigError
from exapt.tools.base import KNOWN_TOOLS

SPECS_DIR = Path(__file__).parent / "specs"
#: A graph in a file of the spec's folder: ``agent.py:build`` (``sub/agent.py:make`` too).
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
FILE_GRAPH = re.compile(rf"^(?P<path>(?:{_PART}/)*{_PART}\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")
#: What ``code`` may hold: the agent's source, not data.
MAX_CODE_BYTES = 1_000_000
MAX_CODE_FILES = 200

#: Built-in graphs by short name; any other value of ``graph`` is a dotted path to a builder.
KNOWN_GRAPHS: dict[str, str] = {
    "tool_coder": "exapt.agents.graphs.tool_coder:build",
    "text_coder": "exapt.agents.graphs.text_coder:build",
    "completion": "exapt.agents.graphs.completion:build",
    "web": "exapt.agents.graphs.web:build",  # browser tasks (BrowserGym actions)
}


class MemoryOptions(BaseModel):
    """How much long-term memory goes into the prompt; ``enabled: false`` = no recall, no learn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    reflections_k: int = Field(default=3, ge=0)
    skills_k: int = Field(default=3, ge=0)
    insights_k: int = Field(default=5, ge=0)


class AgentSpec(BaseModel):
    """One agent variant. Immutable: evolution makes a changed copy (``model_copy(update=...)``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    graph: str = Field(
        description="tool_coder | text_coder | completion | FILE.py:builder | module:builder"
    )
    model: str | None = Field(default=None, description="default model name when none is given")
    prompts: dict[str, str] = Field(default_factory=dict, description="name -> Jinja template")
    tools: list[str] = Field(default_factory=list)
    limits: Budget = Budget()
    graph_options: dict[str, Any] = Field(default_factory=dict)
    memory: MemoryOptions = MemoryOptions()
    code: dict[str, str] = Field(
        default_factory=dict,
        description="the agent's own source files (path -> text) when graph names a file",
    )

    @field_validator("graph")
    @classmethod
    def _known_graph(cls, value: str) -> str:
        if value not in KNOWN_GRAPHS and "." not in value:
            raise ValueError(
                f"unknown graph {value!r}; use one of {sorted(KNOWN_GRAPHS)}, FILE.py:builder "
                "or module:builder"
            )
        if value.endswith(".py") or (".py:" in value and not FILE_GRAPH.match(value)):
            raise ValueError(
                f"graph {value!r}: a graph in a file is PATH.py:FUNCTION, PATH relative to "
                "the spec's folder (no '..', no absolute path)"
            )
        return value

    @field_validator("code")
    @classmethod
    def _code_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value:
            rel = PurePosixPath(path)
            if rel.is_absolute() or ".." in rel.parts or rel.as_posix() != path or not path:
                raise ValueError(f"code file {path!r}: paths are relative, inside the folder")
        if len(value) > MAX_CODE_FILES or sum(len(t) for t in value.values()) > MAX_CODE_BYTES:
            raise ValueError(f"code: at most {MAX_CODE_FILES} files, {MAX_CODE_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _code_has_graph(self) -> AgentSpec:
        match = FILE_GRAPH.match(self.graph)
        if match and match["path"] not in self.code:
            raise ValueError(
                f"graph {self.graph!r} names {match['path']}, which is not among the code "
                f"files ({sorted(self.code)[:5]})"
            )
        if self.code and not match:
            raise ValueError("code files are only for a graph in a file (graph: FILE.py:build)")
        return self

    @property
    def carries_code(self) -> bool:
        """True when the graph is the agent's own code (it runs in the sandbox only)."""
        return FILE_GRAPH.match(self.graph) is not None

    def graph_file(self) -> tuple[str, str]:
        """``(path, function)`` of a graph in a file; ``ConfigError`` for any other graph."""
        match = FILE_GRAPH.match(self.graph)
        if match is None:
            raise ConfigError(f"agent spec {self.name!r}: graph {self.graph!r} is not in a file")
        return match["path"], match["func"]

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in KNOWN_TOOLS and "." not in name:
                raise ValueError(f"unknown tool {name!r}; use any of {sorted(KNOWN_TOOLS)}")
        return value

    @field_validator("prompts")
    @classmethod
    def _templates_parse(cls, value: dict[str, str]) -> dict[str, str]:
        env = jinja2.Environment()
        for name, text in value.items():
            try:
                env.parse(text)
            except jinja2.TemplateSyntaxError as exc:
                raise ValueError(
                    f"prompt {name!r}: Jinja syntax error line {exc.lineno}: {exc.message}"
                ) from exc
        return value

    def variant_id(self) -> str:
        """Hash of the whole content (prompt texts included): equal content, equal id."""
        data = self.model_dump(mode="json")
        if not data["code"]:  # specs without code keep the ids they had before code existed
            del data["code"]
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        """The spec as YAML with every prompt inline; ``load_spec`` reads it back unchanged."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def with_changes(self, **changes: Any) -> AgentSpec:
        """A validated copy with ``changes`` (e.g. ``prompts={...}``); ``ConfigError`` if bad.
        (``model_copy(update=...)`` would skip validation.)"""
        data = {**self.model_dump(), **changes}
        try:
            return AgentSpec.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"agent spec {self.name!r}: {_problems(exc)}") from exc

    def save(self, directory: str | Path) -> Path:
        """Write ``spec.yaml`` with each prompt in ``prompts/<name>.md.j2`` and each code file
        at its path (a variant's folder); ``load_spec`` of the returned path gives an equal
        spec."""
        folder = Path(directory)
        (folder / "prompts").mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
        for rel, text in data.pop("code").items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        for name, text in self.prompts.items():
            (folder / "prompts" / f"{name}.md.j2").write_text(text)
            data["prompts"][name] = f"file:prompts/{name}.md.j2"
        path = folder / "spec.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return path


def load_spec(source: str | Path) -> AgentSpec:
    """Read a spec from a YAML file, or a built-in spec by name (``tool_coder`` ...).

    Raises ``ConfigError`` naming the file and the field for every kind of bad input.
    """
    path = Path(source)
    if not path.exists() and (SPECS_DIR / f"{source}.yaml").exists():
        return _builtin(str(source))
    return _load(path, source)


@functools.cache
def _builtin(name: str) -> AgentSpec:
    # Specs are immutable, so one loaded copy of each built-in is shared by all tasks.
    # Built-in prompts live beside the specs folder (agents/prompts/): that is their root.
    return _load(SPECS_DIR / f"{name}.yaml", name, root=SPECS_DIR.parent)


def _load(path: Path, source: str | Path, root: Path | None = None) -> AgentSpec:
    if not path.is_file():
        builtin = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))
        raise ConfigError(
            f"no agent spec file {str(source)!r}", hint=f"give a YAML path or one of {builtin}"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an agent spec is a YAML mapping (name, graph, prompts, ...)")
    prompts = data.get("prompts") or {}
    if not isinstance(prompts, dict):
        raise ConfigError(f"{path}: field 'prompts' must map prompt names to templates")
    root = (root or path.parent).resolve()
    data["prompts"] = {name: _prompt_text(path, root, name, text) for name, text in prompts.items()}
    graph = data.get("graph")
    if isinstance(graph, str) and FILE_GRAPH.match(graph) and "code" not in data:
        data["code"] = _code_files(path)
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: {_problems(exc)}", hint="see the spec format in README"
        ) from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"field '{'.'.join(str(p) for p in err['loc'])}': {err['msg']}" for err in exc.errors()
    )


def _prompt_text(spec_path: Path, root: Path, name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{spec_path}: field 'prompts.{name}' must be text or 'file:PATH'")
    if not value.startswith("file:"):
        return value
    target = (spec_path.parent / value.removeprefix("file:").strip()).resolve()
    if not target.is_relative_to(root):
        # A prompt is sent to a model: it must never read a host file (keys, hidden tests).
        raise ConfigError(
            f"{spec_path}: field 'prompts.{name}': {value!r} is outside the spec's folder",
            hint=f"file: paths must stay inside {root} (no '..', no absolute path, no symlink out)",
        )
    try:
        return target.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{spec_path}: field 'prompts.{name}': cannot read {target}: {exc.strerror}",
            hint="file: paths are relative to the spec's folder",
        ) from exc


def _code_files(spec_path: Path) -> dict[str, str]:
    """Every ``*.py`` file under the spec's folder (the agent's own code), by relative path.
    ``ConfigError`` for a symlink, a file that is not UTF-8, or more than the limits."""
    folder = spec_path.parent
    code: dict[str, str] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.endswith(".py"):
                continue
            if path.is_symlink() or not path.is_file():
                raise ConfigError(f"{path}: code files must be regular files (no symlinks)")
            data = path.read_bytes()
            total += len(data)
            if total > MAX_CODE_BYTES or len(code) >= MAX_CODE_FILES:
                raise ConfigError(
                    f"{folder}: the agent's code is over {MAX_CODE_BYTES} bytes or "
                    f"{MAX_CODE_FILES} files",
                    hint="a variant's folder holds its source only",
                )
            try:
                code[path.relative_to(folder).as_posix()] = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{path}: code files must be UTF-8 text") from exc
    return code


def is_function_completion(task: Any) -> bool:
    """True for tasks that ask to complete one function (they name its ``entry_point``)."""
    return bool(getattr(task, "metadata", {}).get("entry_point"))


def default_spec_for(model: Model, task: Any = None) -> AgentSpec:
    """The built-in agent that suits ``model``: ``completion`` for base models (on
    function-completion tasks, or when no task is given), ``text_coder`` for other models
    without tool calling, ``tool_coder`` otherwise; ``web_agent`` for web tasks."""
    if getattr(task, "language", None) == "web":  # a browser task (exapt.tasks.miniwob)
        return load_spec("web_agent")
    if getattr(model, "is_base", False) and (task is None or is_function_completion(task)):
        return load_spec("completion")
    if not model.supports_tools or getattr(model, "is_base", False):
        return load_spec("text_coder")
    return load_spec("tool_coder")
