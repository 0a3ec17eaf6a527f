"""What an agent can call: shell, file view/edit, submit (``exapt.tools``)."""

from exapt.tools.base import (
    KNOWN_TOOLS,
    Submitted,
    Tool,
    ToolContext,
    ToolError,
    get_tool,
    get_tools,
    openai_schema,
)

__all__ = [
    "KNOWN_TOOLS",
    "Submitted",
    "Tool",
    "ToolContext",
    "ToolError",
    "get_tool",
    "get_tools",
    "openai_schema",
]
