"""Web tools: BrowserGym's actions (``click``, ``fill``, ``select_option``, ``press``,
``scroll``, ``goto``, ``send_msg_to_user`` ...) as tools that act on a browser episode.

Each action is one ``WebTool`` named as in BrowserGym, with BrowserGym's own description
and parameters (``HighLevelActionSet.to_tool_description``), for tool-calling models. For
models without tool calling, ``parse_text_action`` reads an action written as text
(``click('12')``, anywhere in a reply) with BrowserGym's action parser and maps it onto
the same tools, so both kinds of agents share one action set and one trajectory format.

A tool acts through ``ctx.sandbox``, which must be a ``BrowserEpisode``: it builds one
BrowserGym action string from the arguments and runs it with ``episode.act``. The result
is the observation text (goal, URL, accessibility tree with element ids, the action's
error). An invalid action — a bad bid, a refused URL, a wrong argument — is an error in
that observation (or a ``ToolError``), never an exception out of the agent. When the
episode is over (the task finished, the page was left, the browser crashed or the time
ran out) the tool raises ``EpisodeEnded``, a ``Submitted``: the agent's loop ends there.

Example:
    tool = get_tool("click")
    text = tool.run(ToolContext(sandbox=episode), bid="13")
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from exapt.tools.base import Submitted, ToolContext, ToolError, cut
from exapt.tools.web_names import WEB_ACTIONS

__all__ = [
    "EpisodeEnded",
    "WebTool",
    "current_observation",
    "episode_over",
    "latest_observation",
    "parse_text_action",
    "render_observation",
]


class EpisodeEnded(Submitted):
    """The episode is over; ``reason`` says why (``done``, ``left_task_page``,
    ``browser_crashed``, ``episode_timeout``...), ``message`` is the last observation."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@functools.cache
def _descriptors() -> dict[str, dict[str, Any]]:
    """BrowserGym's tool descriptors of the environment's action set, by action name."""
    from exapt.sandbox.browser import tool_descriptions

    found = {}
    for tool in tool_descriptions():
        parameters = tool["parameters"]
        for spec in parameters["properties"].values():
            if isinstance(spec.get("default"), list):  # list[Literal[...]] read as a string
                spec["type"] = "array"
            if spec.get("type") == "array":  # some providers reject arrays without items
                spec.setdefault("items", {"type": "string"})
        found[tool["name"]] = {"description": tool["description"], "parameters": parameters}
    return found


@functools.cache
def _signature(name: str) -> inspect.Signature:
    from browsergym.core.action import functions

    return inspect.signature(getattr(functions, name))


class WebTool:
    """One BrowserGym action as a tool (see the module docstring)."""

    def __init__(self, action: str) -> None:
        if action not in WEB_ACTIONS:
            raise ToolError(f"unknown web action {action!r}; use one of {', '.join(WEB_ACTIONS)}")
        descriptor = _descriptors()[action]
        self.name = action
        self.description = descriptor["description"]
        self.parameters = descriptor["parameters"]

    def run(self, ctx: ToolContext, **args: Any) -> str:
        episode = _episode(ctx)
        if episode.done:
            raise EpisodeEnded(episode.observe().end_reason, "the episode is already over")
        observation = episode.act(self.action_string(args))
        text = render_observation(observation, ctx.max_output_chars)
        if observation.done:
            raise EpisodeEnded(observation.end_reason or "done", text)
        return text

    def action_string(self, args: dict[str, Any]) -> str:
        """The BrowserGym call for ``args``: ``click(bid='13', button='left')``."""
        try:
            bound = _signature(self.name).bind(**args)
        except TypeError as exc:
            raise ToolError(f"{self.name}: {exc}; parameters: {self.parameters}") from exc
        parts = []
        for key, value in bound.arguments.items():
            annotation = _signature(self.name).parameters[key].annotation
            if annotation in (str, "str") and isinstance(value, int | float):
                value = str(value)  # a bid written as a number
            parts.append(f"{key}={value!r}")
        return f"{self.name}({', '.join(parts)})"


def _episode(ctx: ToolContext) -> Any:
    episode = ctx.sandbox
    if not (
        callable(getattr(episode, "act", None)) and callable(getattr(episode, "observe", None))
    ):
        raise ToolError(
            f"web tools act in a browser; this task runs in a {episode.backend!r} sandbox",
            hint="use the web tools for web tasks only",
        )
    return episode


def render_observation(observation: Any, max_chars: int = 10_000) -> str:
    """The observation as the agent reads it (what trajectories store for each step)."""
    lines = [f"Goal: {observation.goal}", f"URL: {observation.url}"]
    if observation.last_action:
        lines.append(f"Last action: {observation.last_action}")
        if observation.last_action_error:
            lines.append(f"Error: {observation.last_action_error.removeprefix('Error: ')}")
    if observation.focused_bid:
        lines.append(f"Focused element: [{observation.focused_bid}]")
    if observation.done:
        lines.append(f"The episode is over ({observation.end_reason or 'done'}).")
    lines.append("Page (accessibility tree; [id] role 'name'):")
    lines.append(cut(observation.axtree.strip(), max(500, max_chars - 500)))
    if observation.screenshot:
        lines.append(f"[screenshot: {observation.screenshot}]")
    return "\n".join(lines)


def latest_observation(ctx: ToolContext) -> Any:
    """The episode's latest ``Observation`` (goal, url, axtree, last action's error...)."""
    return _episode(ctx).observe()


def current_observation(ctx: ToolContext) -> str:
    """The episode's latest observation as text (for an agent's first prompt)."""
    return render_observation(latest_observation(ctx), ctx.max_output_chars)


def episode_over(ctx: ToolContext) -> str | None:
    """Why the episode is over, or None while it runs."""
    episode = _episode(ctx)
    return (episode.observe().end_reason or "done") if episode.done else None


def parse_text_action(text: str, allowed: set[str] | None = None) -> tuple[str, dict[str, Any]]:
    """The first BrowserGym action call in ``text`` (``click('12')``; prose around it is
    ignored) as ``(tool name, arguments)``. Raises ``ToolError`` when there is none, or when
    its arguments do not fit the action (the message says what to write)."""
    from browsergym.core.action.parsers import NamedArgument

    from exapt.sandbox.browser import find_calls

    names = set(allowed if allowed is not None else WEB_ACTIONS)
    calls = find_calls(text)
    for name, args in calls:
        if name not in names:
            continue
        positional = [a for a in args if not isinstance(a, NamedArgument)]
        named = {a.name: a.value for a in args if isinstance(a, NamedArgument)}
        try:
            bound = _signature(name).bind(*positional, **named)
        except TypeError as exc:
            raise ToolError(f"{name}: {exc}; e.g. {_example(name)}") from exc
        return name, dict(bound.arguments)
    shown = ", ".join(sorted(names)[:12])
    raise ToolError(
        "your reply contains no action. Write exactly one action call such as "
        f"click('12') or fill('7', 'text'); actions: {shown}"
    )


def _example(name: str) -> str:
    description = _descriptors().get(name, {}).get("description", "")
    examples = [line[2:] for line in description.splitlines() if line.startswith("- ")]
    return examples[0] if examples else f"{name}(...)"


def __getattr__(name: str) -> Any:
    # The registry names each action as ``exapt.tools.web:<action>``: a factory of its tool.
    if name in WEB_ACTIONS:
        return functools.partial(WebTool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
