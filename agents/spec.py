"""``AgentSpec``: the genome of an agent — graph, model, prompts, tools, limits, options.

A spec is one YAML file. Prompts are Jinja templates (``StrictUndefined``), written inline
or as ``file:PATH`` (relative to the YAML); they are read at load time, so a loaded spec
holds every prompt's text and ``variant_id()`` (the hash of the content) changes when any
prompt changes. Format::

    name: my_agent                      # required
    description: what it is for
    graph: tool_coder                   # tool_coder | text_coder | completion | module:build
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
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exapt.agents.budget import Budget
from exapt.agents.models.base import Model
from exapt.errors import ConfigError
from exapt.tools.base import KNOWN_TOOLS

SPECS_DIR = Path(__file__).parent / "specs"

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
    graph: str = Field(description="tool_coder | text_coder | completion | module:builder")
    model: str | None = Field(default=None, description="default model name when none is given")
    prompts: dict[str, str] = Field(default_factory=dict, description="name -> Jinja template")
    tools: list[str] = Field(default_factory=list)
    limits: Budget = Budget()
    graph_options: dict[str, Any] = Field(default_factory=dict)
    memory: MemoryOptions = MemoryOptions()

    @field_validator("graph")
    @classmethod
    def _known_graph(cls, value: str) -> str:
        if value not in KNOWN_GRAPHS and "." not in value:
            raise ValueError(
                f"unknown graph {value!r}; use one of {sorted(KNOWN_GRAPHS)} or module:builder"
            )
        return value

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
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
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
        """Write ``spec.yaml`` with each prompt in ``prompts/<name>.md.j2`` (a variant's folder);
        ``load_spec`` of the returned path gives an equal spec."""
        folder = Path(directory)
        (folder / "prompts").mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json")
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
    return _load(SPECS_DIR / f"{name}.yaml", name)


def _load(path: Path, source: str | Path) -> AgentSpec:
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
    data["prompts"] = {name: _prompt_text(path, name, text) for name, text in prompts.items()}
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


def _prompt_text(spec_path: Path, name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{spec_path}: field 'prompts.{name}' must be text or 'file:PATH'")
    if not value.startswith("file:"):
        return value
    target = (spec_path.parent / value.removeprefix("file:").strip()).resolve()
    try:
        return target.read_text()
    except OSError as exc:
        raise ConfigError(
            f"{spec_path}: field 'prompts.{name}': cannot read {target}: {exc.strerror}",
            hint="file: paths are relative to the spec's folder",
        ) from exc


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
