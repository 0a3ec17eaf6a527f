"""The noun of acting: the ``Tool`` protocol, its ``ToolContext`` and the registry by name.

A tool is what an agent can call: a name, a description, JSON-schema ``parameters`` and
``run(ctx, **args) -> str``. The string is the observation the model sees next.

Contract for every tool:
- It acts only through ``ctx.sandbox``: a tool never runs code in the host process.
- A problem the model can fix (a missing file, an ambiguous edit) raises ``ToolError`` with a
  message that says what to do next; the agent turns it into an observation.
- ``submit`` raises ``Submitted``: the agent's loop ends there (errors steer the loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from exapt.errors import ConfigError, ExaptError
from exapt.registry import resolve
from exapt.sandbox.base import Sandbox
from exapt.tools.web_names import WEB_TOOLS


class ToolError(ExaptError):
    """The call cannot be done as asked; the message tells the model what to do instead."""


class Submitted(Exception):  # a signal, not an error: errors steer the loop (STYLE)
    """Raised by ``submit``: the agent says it is done. ``message`` is its closing note."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ToolContext:
    """What a tool may touch: the task's sandbox, how long and how much it may output, and
    the environment its commands get on top of the sandbox's own (e.g. a toolchain's PATH)."""

    sandbox: Sandbox
    timeout_s: float = 60.0
    max_output_chars: int = 10_000
    env: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Tool(Protocol):
    """Something an agent can call. ``parameters`` is a JSON schema of ``run``'s keyword args.
    (Read-only members: a class attribute or an instance attribute both satisfy them.)"""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]: ...

    def run(self, ctx: ToolContext, **args: Any) -> str: ...


#: Built-in tools by short name; a dotted path ``package.module:Class`` also works.
KNOWN_TOOLS: dict[str, str] = {
    "shell": "exapt.tools.shell:ShellTool",
    "view": "exapt.tools.view:ViewTool",
    "create": "exapt.tools.edit:CreateTool",
    "str_replace": "exapt.tools.edit:StrReplaceTool",
    "submit": "exapt.tools.submit:SubmitTool",
    **WEB_TOOLS,  # BrowserGym's actions, acting on a browser episode (exapt.tools.web)
}


def get_tool(name: str) -> Tool:
    """A fresh instance of the tool called ``name``; ``ConfigError`` lists the valid names."""
    tool = resolve("tool", name, KNOWN_TOOLS)()
    if not isinstance(tool, Tool):
        raise ConfigError(f"tool {name!r} is not a Tool (needs name, description, parameters, run)")
    return tool


def get_tools(names: list[str]) -> dict[str, Tool]:
    """Tools by the name the model calls them with, in the order given."""
    tools = [get_tool(name) for name in names]
    return {tool.name: tool for tool in tools}


def object_schema(
    required: tuple[str, ...] = (), **properties: str | dict[str, Any]
) -> dict[str, Any]:
    """A JSON schema of keyword arguments: each property a description (a string argument)
    or a schema of its own; ``required`` names those that must be given."""
    props = {
        name: {"type": "string", "description": spec} if isinstance(spec, str) else spec
        for name, spec in properties.items()
    }
    return {"type": "object", "properties": props, "required": list(required)}


#: The ``path`` argument of every file tool.
PATH = "path relative to the workspace"


def openai_schema(tool: Tool) -> dict[str, Any]:
    """The OpenAI function-calling schema of ``tool`` (what ``Model.chat(tools=...)`` takes)."""
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def cut(text: str, limit: int) -> str:
    """``text`` if short enough, else its head and tail with a label saying how much was cut."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[-tail:]}"
