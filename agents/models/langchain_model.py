"""``LangChainModel``: any LangChain ``BaseChatModel`` as an exapt ``Model``.

Useful for LangChain's fake chat models in tests (``GenericFakeChatModel``) and for chat models
that only exist as LangChain integrations. OpenAI-format messages are converted with
``convert_to_messages``; tools are bound with ``bind_tools`` when the model supports it (fake
models do not, and then get the messages only); the reply's tool calls become ``ToolCall``s,
its ``invalid_tool_calls`` too, with the raw arguments kept (see ``RAW_ARGUMENTS_KEY``).
Tokens come from ``usage_metadata`` (0 when absent); cost is 0.0 (LangChain does not report it).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from exapt.agents.models.base import (
    ARGUMENTS_ERROR_KEY,
    RAW_ARGUMENTS_KEY,
    Message,
    ModelError,
    ModelReply,
    ToolCall,
)


class LangChainModel:
    """Adapt a LangChain chat model to the ``Model`` protocol.

    Example:
        fake = GenericFakeChatModel(messages=iter([AIMessage(content="done")]))
        LangChainModel(fake).chat([{"role": "user", "content": "go"}]).text  # "done"
    """

    def __init__(
        self,
        chat_model: Any,
        *,
        name: str | None = None,
        supports_tools: bool = True,
        is_base: bool = False,
    ) -> None:
        self.chat_model = chat_model
        self.name = name or f"langchain:{type(chat_model).__name__}"
        self.supports_tools = supports_tools
        self.is_base = is_base

    def chat(
        self, messages: list[Message], *, tools: list[dict[str, Any]] | None = None, **params: Any
    ) -> ModelReply:
        from langchain_core.messages import convert_to_messages

        runnable = self.chat_model
        if tools:
            # Fake models cannot bind tools: they answer from their script whatever the tools.
            with contextlib.suppress(NotImplementedError):
                runnable = runnable.bind_tools(tools)
        started = time.perf_counter()
        try:
            message = runnable.invoke(convert_to_messages(messages), **params)
        except Exception as exc:
            raise ModelError(
                f"LangChain model {self.name!r} failed: {type(exc).__name__}: {exc}",
                hint="see the chained exception; a fake model raises when its script runs out",
            ) from exc
        return self._reply(message, time.perf_counter() - started)

    def complete(self, prompt: str, *, stop: list[str] | None = None, **params: Any) -> ModelReply:
        reply = self.chat([{"role": "user", "content": prompt}], stop=stop, **params)
        cuts = [i for s in stop or [] if s and (i := reply.text.find(s)) >= 0]
        if cuts:  # not every chat model honours stop; the contract says the text ends before it
            reply = reply.model_copy(update={"text": reply.text[: min(cuts)]})
        return reply

    def _reply(self, message: Any, duration: float) -> ModelReply:
        calls = [
            ToolCall(
                id=call.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                name=call["name"],
                arguments=dict(call.get("args") or {}),
            )
            for call in getattr(message, "tool_calls", None) or []
        ]
        calls += [
            ToolCall(
                id=call.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                name=call.get("name") or "",
                arguments={
                    RAW_ARGUMENTS_KEY: call.get("args") or "",
                    ARGUMENTS_ERROR_KEY: call.get("error") or "arguments are not valid JSON",
                },
            )
            for call in getattr(message, "invalid_tool_calls", None) or []
        ]
        usage = getattr(message, "usage_metadata", None) or {}
        metadata = getattr(message, "response_metadata", None) or {}
        finish = metadata.get("finish_reason") or ("tool_calls" if calls else "stop")
        return ModelReply(
            text=_text(message),
            tool_calls=calls,
            tokens_in=int(usage.get("input_tokens", 0) or 0),
            tokens_out=int(usage.get("output_tokens", 0) or 0),
            duration_s=duration,
            finish_reason=finish,
            model=self.name,
        )


def _text(message: Any) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, str):
        return content
    # A list of content blocks (e.g. Anthropic): keep the text blocks.
    return "".join(
        block.get("text", "") if isinstance(block, dict) else str(block) for block in content or []
    )
