"""``web``: the agent loop for browser tasks — BrowserGym's observation in, its actions out.

start (the episode's first observation) -> model -> act -> model ... until the episode ends
(the task finished, the page was left, the browser crashed, the time ran out) or a budget
limit. Three ways to ask the model, by graph option ``mode`` (``auto`` picks by model):

- ``tools``: chat with the web tools as functions (models with tool calling);
- ``text``: chat, the action written in the reply (``click('12')``) and read with
  BrowserGym's parser (chat models without tool calling);
- ``completion``: base models (the embedded ``local``): every step is one fresh few-shot
  prompt (``step``) with the goal, the last actions and the page, completed up to the end
  of the line.

Prompts: ``system``, ``instance`` (get ``observation``: the first observation as text),
``observation`` (text mode; ``action``, ``output``), ``format_error`` (``error``, ``reply``),
``step`` (completion; ``observation``: the ``Observation``, ``previous``: recent actions
with their errors, ``recollection``...). ``stop_reason`` is ``episode_done`` when the task
finished, else ``left_task_page``, ``browser_crashed``, ``episode_timeout``... or a budget's.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime

from exapt.agents.context import AgentContext
from exapt.agents.graphs.loop import LoopState, counters, history, out_of_context, run_action
from exapt.agents.models.base import ContextWindowExceeded, Message, ToolCall
from exapt.agents.spec import AgentSpec
from exapt.errors import ConfigError
from exapt.tools.base import ToolError
from exapt.tools.web import (
    EpisodeEnded,
    current_observation,
    episode_over,
    latest_observation,
    parse_text_action,
)

MODES = ("auto", "tools", "text", "completion")


class WebState(LoopState):
    """``LoopState`` plus what the completion mode rebuilds its prompt from."""

    previous: Annotated[list[str], operator.add]  # "click('12')" or "click('12') -> error: ..."


def mode_of(ctx: AgentContext) -> str:
    mode = str(ctx.option("mode", "auto"))
    if mode not in MODES:
        raise ConfigError(f"graph option mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    if getattr(ctx.model, "is_base", False):
        return "completion"
    return "tools" if ctx.model.supports_tools else "text"


def start(state: WebState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    tools = ctx.tool_context()
    ended = episode_over(tools)
    if ended is not None:  # the episode could not start (e.g. the browser failed twice)
        ctx.recorder.note(f"the episode ended before the first action ({ended})")
        return {"stop_reason": _stop(ended)}
    if mode_of(ctx) == "completion":  # its prompt is rebuilt at every step
        return {}
    text = current_observation(tools)
    return {
        "messages": [
            {"role": "system", "content": ctx.message("system", mode=mode_of(ctx))},
            {"role": "user", "content": ctx.message("instance", observation=text)},
        ]
    }


def model(state: WebState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    if reason := ctx.stop_reason(state):
        return {"stop_reason": reason}
    mode = mode_of(ctx)
    try:
        if mode == "completion":
            return _complete(ctx, state)
        reply = ctx.chat(history(ctx, state["messages"]), tools=mode == "tools")
    except ContextWindowExceeded as exc:
        return out_of_context(ctx, exc)
    update: dict[str, Any] = {**counters(reply), "messages": [reply.as_message()]}
    if mode == "tools":
        update["actions"] = reply.tool_calls[:1]  # one action, then look at the page again
        if not reply.tool_calls:
            error = ctx.message("format_error", error="no tool call", reply=reply.text)
            ctx.recorder.note(error)
            update["messages"].append({"role": "user", "content": error})
        return update
    try:
        name, arguments = parse_text_action(reply.text, set(ctx.tools))
    except ToolError as exc:
        error = ctx.message("format_error", error=exc.message, reply=reply.text)
        ctx.recorder.note(error)
        update["messages"].append({"role": "user", "content": error})
        update["actions"] = []
        return update
    update["actions"] = [ToolCall(id=f"text-{state['steps']}", name=name, arguments=arguments)]
    return update


def _complete(ctx: AgentContext, state: WebState) -> dict[str, Any]:
    """Completion mode: one few-shot prompt per step; the reply is one line."""
    observation = latest_observation(ctx.tool_context())
    keep = int(ctx.option("previous_actions", 5))
    prompt = ctx.render("step", observation=observation, previous=state["previous"][-keep:])
    # One action fits in a line: a short cap keeps a rambling base model from generating
    # hundreds of tokens per step (graph option ``completion_max_tokens``).
    params: dict[str, Any] = {"max_tokens": int(ctx.option("completion_max_tokens", 48))}
    if "temperature" in ctx.spec.graph_options:
        params["temperature"] = ctx.spec.graph_options["temperature"]
    started = time.monotonic()
    reply = ctx.model.complete(prompt, stop=["\n"], **params)
    request = {"prompt": prompt, "stop": ["\n"], "params": params}
    ctx.recorder.model_call(request, reply, time.monotonic() - started)
    update: dict[str, Any] = {**counters(reply), "actions": []}
    try:
        name, arguments = parse_text_action(reply.text, set(ctx.tools))
    except ToolError as exc:
        ctx.recorder.note(f"no action in the reply: {exc.message}")
        update["previous"] = [f"{reply.text.strip()[:80]!r} -> error: not an action"]
        return update
    update["actions"] = [ToolCall(id=f"step-{state['steps']}", name=name, arguments=arguments)]
    return update


def act(state: WebState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    ctx = runtime.context
    mode = mode_of(ctx)
    messages: list[Message] = []
    previous: list[str] = []
    for call in state.get("actions", []):
        started = time.monotonic()
        shown = _shown(call)
        try:
            observation = run_action(ctx, call)
        except EpisodeEnded as ended:
            ctx.recorder.tool_call(call, ended.message, time.monotonic() - started)
            return {"actions": [], "previous": [shown], "stop_reason": _stop(ended.reason)}
        ctx.recorder.tool_call(call, observation, time.monotonic() - started)
        error = _error_line(observation)
        previous.append(f"{shown} -> error: {error}" if error else shown)
        if mode == "tools":
            messages.append({"role": "tool", "tool_call_id": call.id, "content": observation})
        elif mode == "text":
            text = ctx.message("observation", action=call, output=observation)
            messages.append({"role": "user", "content": text})
    return {"messages": messages, "actions": [], "previous": previous}


def _shown(call: ToolCall) -> str:
    args = ", ".join(repr(v) for v in call.arguments.values())
    return f"{call.name}({args})"


def _error_line(observation: str) -> str:
    if observation.startswith("error:"):
        return observation.removeprefix("error:").strip().splitlines()[0][:200]
    for line in observation.splitlines():
        if line.startswith("Error: "):
            return line.removeprefix("Error: ")[:200]
    return ""


def _stop(reason: str) -> str:
    return "episode_done" if reason in ("", "done") else reason


def after_model(state: WebState) -> str:
    if state.get("stop_reason"):
        return "__end__"
    return "act" if state.get("actions") else "model"


def after_act(state: WebState) -> str:
    return "__end__" if state.get("stop_reason") else "model"


def after_start(state: WebState) -> str:
    return "__end__" if state.get("stop_reason") else "model"


def build(spec: AgentSpec) -> StateGraph[WebState, AgentContext, WebState, WebState]:
    graph = StateGraph(WebState, context_schema=AgentContext)
    graph.add_node("start", start)
    graph.add_node("model", model)
    graph.add_node("act", act)
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", after_start, ["model", "__end__"])
    graph.add_conditional_edges("model", after_model, ["act", "model", "__end__"])
    graph.add_conditional_edges("act", after_act, ["model", "__end__"])
    return graph
