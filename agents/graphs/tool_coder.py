"""``tool_coder``: a ReAct loop with native tool calls, for chat models that support them.

start -> model -> act -> model ... until ``submit`` or a budget limit. A reply without a
tool call gets the ``format_error`` prompt as the next user message (errors steer the loop).
Prompts: ``system``, ``instance``, ``format_error`` (gets ``reply``, the text without a
call), and whatever they include; every prompt gets ``task``, ``recollection``, ``tools``
and ``options`` (see ``AgentContext.render``).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import StateGraph
from langgraph.runtime import Runtime

from exapt.agents.context import AgentContext
from exapt.agents.graphs.loop import LoopState, build_loop, counters, history, out_of_context
from exapt.agents.models.base import ContextWindowExceeded, Message, ToolCall
from exapt.agents.spec import AgentSpec


def model(state: LoopState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    if reason := ctx.stop_reason(state):
        return {"stop_reason": reason}
    try:
        reply = ctx.chat(history(ctx, state["messages"]), tools=True)
    except ContextWindowExceeded as exc:
        return out_of_context(ctx, exc)
    update = {**counters(reply), "messages": [reply.as_message()], "actions": reply.tool_calls}
    if not reply.tool_calls:
        error = ctx.message("format_error", reply=reply.text)
        ctx.recorder.note(error)
        update["messages"].append({"role": "user", "content": error})
    return update


def observe(ctx: AgentContext, call: ToolCall, observation: str) -> Message:
    return {"role": "tool", "tool_call_id": call.id, "content": observation}


def build(spec: AgentSpec) -> StateGraph[LoopState, AgentContext, LoopState, LoopState]:
    return build_loop(model, observe)
