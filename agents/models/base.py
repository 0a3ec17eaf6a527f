"""The noun of generation: the ``Model`` protocol and its ``ModelReply``.

Messages are OpenAI chat-format dicts (``{"role": ..., "content": ..., "tool_calls": ...}``)
everywhere in exapt, so a trajectory exports to fine-tuning data without translation.

Contract: ``chat`` and ``complete`` return a ``ModelReply`` with token counts and cost
(0.0 when unknown or local). They raise ``ModelError`` (a provider error, a missing API key,
a server that is down) with a message that says what to do; they never return a
half-filled reply for an error.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from exapt.errors import ExaptError

Message = dict[str, Any]

# Tool-call arguments a model sent that are not a JSON object are kept, not dropped: the raw
# string under RAW_ARGUMENTS_KEY and the reason under ARGUMENTS_ERROR_KEY, so the agent can tell
# the model what was wrong. (Added with the models backends.)
RAW_ARGUMENTS_KEY = "_raw_arguments"
ARGUMENTS_ERROR_KEY = "_arguments_error"


class ModelError(ExaptError):
    """A model call failed: provider error, missing key, unreachable server."""


class ContextWindowExceeded(ModelError):
    """The request does not fit the model's context window. Not fatal for a run: the
    attempt ends with ``stop_reason="context_window"`` and the next task goes on."""


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ModelReply(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    finish_reason: str | None = None
    model: str = ""

    def as_message(self) -> Message:
        """The assistant message in OpenAI chat format (for the next turn and for export)."""
        message: Message = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            import json

            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in self.tool_calls
            ]
        return message


@runtime_checkable
class Model(Protocol):
    """A language model, named by a string (``local``, ``local:PATH``, any litellm string)."""

    name: str
    supports_tools: bool
    # True for a base model without chat tuning (e.g. the embedded Gemma): agents then default
    # to the completion / text-action agents. (Added with the models backends.)
    is_base: bool

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        """One chat completion; ``tools`` are OpenAI function schemas."""
        ...

    def complete(self, prompt: str, *, stop: list[str] | None = None, **params: Any) -> ModelReply:
        """One plain text completion (base models)."""
        ...
