"""``text_coder``: the coder loop for models without tool calling; actions are fenced blocks
parsed from plain text (format in ``text_actions``), one action run per reply.

A reply without a valid action gets the ``format_error`` prompt, with the parser's message,
as the next user message. Base models (``model.is_base``) are driven by plain completion
over a ``### User`` / ``### Assistant`` transcript of the same messages (graph option
``use_chat: true`` sends them as chat anyway). Prompts: ``system``, ``instance``,
``format_error`` (gets ``error``, ``reply``), ``observation`` (gets ``action``, ``output``).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import StateGraph
from langgraph.runtime import Runtime

from exapt.agents.context import AgentContext
from exapt.agents.graphs.loop import LoopState, build_loop, counters, history, out_of_context
from exapt.agents.graphs.text_actions import FormatError, parse_actions
from exapt.agents.models.base import ContextWindowExceeded, Message, ModelReply, ToolCall
from exapt.agents.spec import AgentSpec

TURN_STOP = "\n### User"


def transcript(messages: list[Message]) -> str:
    """The chat as one prompt for a base model, ending where the assistant speaks next."""
    parts = []
    for message in messages:
        if message["role"] == "system":
            parts.append(str(message["content"]))
        else:
            parts.append(f"### {message['role'].capitalize()}\n{message['content']}")
    return "\n\n".join([*parts, "### Assistant\n"])


def ask(ctx: AgentContext, messages: list[Message]) -> ModelReply:
    """Chat, or for base models (graph option ``use_chat`` overrides) a plain completion."""
    if ctx.option("use_chat", not ctx.model.is_base):
        return ctx.chat(messages, tools=False)
    return ctx.complete(transcript(messages), stop=[TURN_STOP])


def model(state: LoopState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    if reason := ctx.stop_reason(state):
        return {"stop_reason": reason}
    try:
        reply = ask(ctx, history(ctx, state["messages"]))
    except ContextWindowExceeded as exc:
        return out_of_context(ctx, exc)
    update: dict[str, Any] = {
        **counters(reply),
        "messages": [{"role": "assistant", "content": reply.text}],
    }
    try:
        actions = parse_actions(reply.text)
    except FormatError as exc:
        error = ctx.message("format_error", error=exc.message, reply=reply.text)
        ctx.recorder.note(error)
        update["messages"].append({"role": "user", "content": error})
        update["actions"] = []
        return update
    # One action per reply: the model must see each result before it decides the next step.
    update["actions"] = actions[:1]
    if len(actions) > 1:
        ctx.recorder.note(f"{len(actions) - 1} more action(s) in the reply were not run")
    return update


def observe(ctx: AgentContext, call: ToolCall, observation: str) -> Message:
    return {"role": "user", "content": ctx.message("observation", action=call, output=observation)}


def build(spec: AgentSpec) -> StateGraph[LoopState, AgentContext, LoopState, LoopState]:
    return build_loop(model, observe)
