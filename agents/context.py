"""The one object every graph node gets: ``AgentContext`` (sandbox, model, tools, recorder,
budget), plus the ``Recorder`` that turns model and tool calls into trajectory steps.

Nodes receive it as ``runtime.context`` (LangGraph's run context), so they never grow
argument lists and a graph is compiled once per spec, not once per task.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from exapt.agents.budget import Budget
from exapt.agents.models.base import Message, Model, ModelReply, ToolCall
from exapt.agents.spec import AgentSpec
from exapt.agents.templates import render
from exapt.memory.base import Recollection
from exapt.records import Step, Trajectory
from exapt.sandbox.base import Sandbox
from exapt.tasks.base import SandboxFactory, Task
from exapt.tools.base import Tool, ToolContext, openai_schema


class Recorder:
    """Appends every model call, tool call and note to one ``Trajectory``."""

    def __init__(self, trajectory: Trajectory) -> None:
        self.trajectory = trajectory

    def model_call(self, request: dict[str, Any], reply: ModelReply, duration_s: float) -> Step:
        return self.trajectory.add(
            Step(
                kind="model",
                input=request,
                output=reply.as_message(),
                tokens_in=reply.tokens_in,
                tokens_out=reply.tokens_out,
                cost_usd=reply.cost_usd,
                duration_s=reply.duration_s or duration_s,
            )
        )

    def tool_call(self, call: ToolCall, observation: str, duration_s: float) -> Step:
        request = {"name": call.name, "arguments": call.arguments, "id": call.id}
        return self.trajectory.add(
            Step(kind="tool", input=request, output=observation, duration_s=duration_s)
        )

    def note(self, text: str, **data: Any) -> Step:
        return self.trajectory.add(Step(kind="note", input=data or None, output=text))


@dataclass
class AgentContext:
    """Everything one attempt's nodes may use. ``task`` is the public task (no ``hidden``)."""

    task: Task
    spec: AgentSpec
    model: Model
    sandbox: Sandbox
    sandbox_factory: SandboxFactory
    tools: dict[str, Tool]
    recorder: Recorder
    budget: Budget
    recollection: Recollection | None = None
    started: float = field(default_factory=time.monotonic)

    def option(self, name: str, default: Any) -> Any:
        """A graph option of the spec, or ``default``."""
        return self.spec.graph_options.get(name, default)

    def render(self, name: str, /, **extra: Any) -> str:
        """Render prompt ``name`` of the spec. Every prompt gets ``task`` (the public task as a
        dict: id, suite, instruction, files, language, metadata), ``recollection`` (memory's
        ``Recollection`` or None), ``tools`` (the ``Tool`` objects) and ``options`` (the graph
        options), plus the graph's ``extra`` variables."""
        variables: dict[str, Any] = {
            "task": self.task.public(),
            "recollection": self.recollection,
            "tools": list(self.tools.values()),
            "options": self.spec.graph_options,
            **extra,
        }
        return render(self.spec.prompts, name, self.spec.name, **variables)

    def message(self, name: str, /, **extra: Any) -> str:
        """A rendered prompt as a chat message's text: without surrounding blank lines."""
        return self.render(name, **extra).strip()

    def stop_reason(self, state: Any) -> str | None:
        """Why the next model call may not be made (a budget limit), or None."""
        return self.budget.stop_reason(
            steps=state["steps"],
            tokens=state["tokens"],
            cost_usd=state["cost_usd"],
            started=self.started,
        )

    def tool_context(self) -> ToolContext:
        """Tool limits: the spec's tool timeout, never beyond the wall-clock budget left."""
        timeout = float(self.option("tool_timeout_s", 60.0))
        remaining = self.budget.remaining_wall(self.started)
        if remaining is not None:
            timeout = max(1.0, min(timeout, remaining))
        # A task may name the environment its toolchain needs (public, never secrets).
        env = {str(k): str(v) for k, v in (self.task.metadata.get("toolchain_env") or {}).items()}
        return ToolContext(
            sandbox=self.sandbox,
            timeout_s=timeout,
            max_output_chars=int(self.option("max_output_chars", 10_000)),
            env=env,
        )

    def tool_schemas(self) -> list[dict[str, Any]]:
        return [openai_schema(tool) for tool in self.tools.values()]

    def chat(self, messages: list[Message], *, tools: bool) -> ModelReply:
        """One recorded chat call (with the spec's tools when ``tools``)."""
        schemas = self.tool_schemas() if tools else None
        params = self._sampling_params()
        started = time.monotonic()
        reply = self.model.chat(messages, tools=schemas, **params)
        request = {"messages": list(messages), "tools": schemas, "params": params}
        self.recorder.model_call(request, reply, time.monotonic() - started)
        return reply

    def complete(self, prompt: str, *, stop: list[str] | None = None) -> ModelReply:
        """One recorded plain completion."""
        params = self._sampling_params()
        started = time.monotonic()
        reply = self.model.complete(prompt, stop=stop, **params)
        request = {"prompt": prompt, "stop": stop, "params": params}
        self.recorder.model_call(request, reply, time.monotonic() - started)
        return reply

    def complete_many(
        self, prompt: str, n: int, *, stop: list[str] | None = None
    ) -> list[ModelReply]:
        """``n`` recorded completions of one prompt, requested concurrently (a local server
        batches them); recorded in order once all are back."""
        if n <= 1:
            return [self.complete(prompt, stop=stop)]
        params = self._sampling_params()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=n) as pool:
            replies = list(
                pool.map(lambda _: self.model.complete(prompt, stop=stop, **params), range(n))
            )
        duration = time.monotonic() - started
        for reply in replies:
            request = {"prompt": prompt, "stop": stop, "params": params}
            self.recorder.model_call(request, reply, duration)
        return replies

    def _sampling_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if "temperature" in self.spec.graph_options:
            params["temperature"] = self.spec.graph_options["temperature"]
        if "max_new_tokens" in self.spec.graph_options:
            params["max_tokens"] = self.spec.graph_options["max_new_tokens"]
        return params
