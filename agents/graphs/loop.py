"""What the two coder loops share: their typed state, the ``start`` node, the node that
runs actions and the graph itself (``build_loop``).

A loop is ``start -> model -> act -> model ... -> END``. ``start`` opens the chat with the
``system`` and ``instance`` prompts; ``model`` (each loop's own) checks the budget before
calling (and sets ``stop_reason`` instead when a limit is reached); ``act`` runs the pending
actions through the tools and ends the loop on ``Submitted``. The state keeps every message
whole; ``history`` is what the model is sent (old observations cut short).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, NotRequired, Protocol, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from exapt.agents.context import AgentContext
from exapt.agents.models.base import (
    ARGUMENTS_ERROR_KEY,  # set by the model backends on arguments that are not a JSON object
    ContextWindowExceeded,
    Message,
    ToolCall,
)
from exapt.tools.base import Submitted, ToolError


class LoopState(TypedDict):
    """Reducers: messages and counters accumulate (from 0 / [] when the graph is invoked with
    ``{}``); ``actions`` and ``stop_reason`` are replaced by each write."""

    messages: Annotated[list[Message], operator.add]
    steps: Annotated[int, operator.add]  # model calls made
    tokens: Annotated[int, operator.add]  # tokens in + out
    cost_usd: Annotated[float, operator.add]
    actions: NotRequired[list[ToolCall]]  # what the last model reply asked to run
    stop_reason: NotRequired[str]  # set once: why the loop ended


class Node(Protocol):
    """A loop's node: the state in, the update out, the attempt's context at hand."""

    def __call__(self, state: LoopState, *, runtime: Runtime[AgentContext]) -> dict[str, Any]: ...


#: Turns (call, observation) into the message the model reads next.
Observe = Callable[[AgentContext, ToolCall, str], Message]


def start(state: LoopState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Open the chat: the ``system`` prompt, then the ``instance`` prompt as the user."""
    ctx = runtime.context
    return {
        "messages": [
            {"role": "system", "content": ctx.message("system")},
            {"role": "user", "content": ctx.message("instance")},
        ]
    }


def build_loop(
    model: Node, observe: Observe
) -> StateGraph[LoopState, AgentContext, LoopState, LoopState]:
    """``start -> model -> act -> model ...``: the graph of a coder loop whose model node is
    ``model`` and whose observations are made by ``observe``."""
    graph = StateGraph(LoopState, context_schema=AgentContext)
    graph.add_node("start", start)
    graph.add_node("model", model)
    graph.add_node("act", Act(observe))
    graph.add_edge(START, "start")
    graph.add_edge("start", "model")
    graph.add_conditional_edges("model", after_model, ["act", "model", "__end__"])
    graph.add_conditional_edges("act", after_act, ["model", "__end__"])
    return graph


def history(ctx: AgentContext, messages: list[Message]) -> list[Message]:
    """The messages to send: all of them, but observations (tool/user messages after the
    task) older than the last ``keep_observations`` (graph option, default 5; null = keep
    all) cut to ``old_observation_chars`` (default 300), so that a long loop stays within a
    small model's context window instead of failing the run."""
    keep = ctx.option("keep_observations", 5)
    if keep is None:
        return messages
    limit = int(ctx.option("old_observation_chars", 300))
    observations = [i for i, m in enumerate(messages[2:], 2) if m["role"] in ("tool", "user")]
    old = set(observations[: max(0, len(observations) - int(keep))])
    sent = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if index in old and isinstance(content, str) and len(content) > limit:
            cut = len(content) - limit
            message = {
                **message,
                "content": f"{content[:limit]}\n[... {cut} characters of old output cut ...]",
            }
        sent.append(message)
    return sent


def run_action(ctx: AgentContext, call: ToolCall) -> str:
    """Run one action; every failure becomes an observation except ``Submitted``."""
    tool = ctx.tools.get(call.name)
    if tool is None:
        return f"error: unknown tool {call.name!r}; available tools: {', '.join(ctx.tools)}"
    if ARGUMENTS_ERROR_KEY in call.arguments:
        return (
            f"error: the arguments of your {call.name} call could not be read "
            f"({call.arguments[ARGUMENTS_ERROR_KEY]}); send one JSON object with the "
            "tool's parameters"
        )
    try:
        return tool.run(ctx.tool_context(), **call.arguments)
    except Submitted:
        raise
    except ToolError as exc:
        return f"error: {exc.message}"
    except Exception as exc:  # a tool's crash is the model's observation, not the run's end
        return f"error: {call.name} failed: {type(exc).__name__}: {exc}"


class Act:
    """The ``act`` node: runs the pending actions; ``observe`` turns (call, observation)
    into the message the model reads next (a tool message, or a user message for text)."""

    def __init__(self, observe: Observe) -> None:
        self.observe = observe

    def __call__(self, state: LoopState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        ctx = runtime.context
        messages: list[Message] = []
        for call in state.get("actions", []):
            started = time.monotonic()
            try:
                observation = run_action(ctx, call)
            except Submitted as done:
                note = f"submitted {done.message}".strip()
                ctx.recorder.tool_call(call, note, time.monotonic() - started)
                messages.append(self.observe(ctx, call, "submitted"))
                return {"messages": messages, "actions": [], "stop_reason": "submitted"}
            ctx.recorder.tool_call(call, observation, time.monotonic() - started)
            messages.append(self.observe(ctx, call, observation))
        return {"messages": messages, "actions": []}


def after_model(state: LoopState) -> str:
    """Route: a stop ends the loop, actions are run, anything else asks the model again."""
    if state.get("stop_reason"):
        return END
    return "act" if state.get("actions") else "model"


def after_act(state: LoopState) -> str:
    return END if state.get("stop_reason") else "model"


def out_of_context(ctx: AgentContext, exc: ContextWindowExceeded) -> dict[str, Any]:
    """The conversation outgrew the model's window: end this attempt (recorded), not the run."""
    ctx.recorder.note(f"stopped: {exc.message}")
    return {"stop_reason": "context_window"}


def counters(reply: Any) -> dict[str, Any]:
    """The state update that counts one model call."""
    return {"steps": 1, "tokens": reply.tokens_in + reply.tokens_out, "cost_usd": reply.cost_usd}
