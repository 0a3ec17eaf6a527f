"""One attempt of one agent on one task, from sandbox to scored trajectory.

``run_task``: recall memory -> open the agent's sandbox (task files + memory files) -> run
the graph -> snapshot the workspace -> close -> score the snapshot in a fresh sandbox ->
(learn) -> ``Attempt``. The run engine (``exapt.engine``) runs it with ``learn=False``,
stores the attempt, and only then lets memory learn.

The agent sees ``task.public()`` only; ``task.hidden`` reaches the scorer alone. What the
workspace does to the snapshot or the scorer (too large, unreadable, output no parser can
read) ends this attempt with reward 0 and a ``stop_reason``, never the run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph

from exapt.agents.budget import Budget
from exapt.agents.context import AgentContext, Recorder
from exapt.agents.models.base import Model
from exapt.agents.spec import KNOWN_GRAPHS, AgentSpec
from exapt.errors import ConfigError
from exapt.memory.base import AgentMemory, Recollection
from exapt.records import SCHEMA_VERSION, Outcome, Step, Trajectory, trusted_pass
from exapt.registry import resolve
from exapt.sandbox.base import Sandbox, SandboxError, WorkspaceTooLarge
from exapt.tasks.base import SandboxFactory, Score, Scorer, Task
from exapt.tools.base import get_tools

#: What scoring a hostile workspace may raise besides a broken sandbox: output no parser
#: can read, nesting too deep, a report too large. It is the attempt's result, not a crash.
SCORE_FAILURES = (SandboxError, ValueError, UnicodeError, RecursionError, MemoryError)


@dataclass
class Attempt:
    """What one attempt produced: the trajectory (with its result), the score, the final
    workspace (empty when the engine did not keep it), and whether it came from a cache."""

    trajectory: Trajectory
    score: Score
    workspace: dict[str, bytes]
    cached: bool = False

    @property
    def task_id(self) -> str:
        return self.trajectory.task_id

    @property
    def trial(self) -> int:
        return self.trajectory.trial

    @property
    def learn_error(self) -> str | None:
        """Why memory could not learn from this attempt (it was stored all the same)."""
        error = self.trajectory.metadata.get("learn_error")
        return str(error) if error else None


# Compiled graphs by variant id: compiling is per spec, not per task, and a compiled graph
# is safe to invoke from several worker threads at once.
_COMPILED: dict[str, CompiledStateGraph[Any, AgentContext, Any, Any]] = {}
_COMPILED_LOCK = threading.Lock()


def build_graph(spec: AgentSpec) -> StateGraph[Any, AgentContext, Any, Any]:
    """The uncompiled graph of ``spec`` (a built-in name or a ``module:build`` path)."""
    builder = resolve("agent graph", spec.graph, KNOWN_GRAPHS)
    graph: StateGraph[Any, AgentContext, Any, Any] = builder(spec)
    if not isinstance(graph, StateGraph):
        raise ConfigError(
            f"graph builder {spec.graph!r} returned {type(graph).__name__}, not a StateGraph"
        )
    return graph


def run_graph(ctx: AgentContext) -> dict[str, Any]:
    """Compile and run the spec's graph on ``ctx``; the final state (with ``stop_reason``)."""
    key = ctx.spec.variant_id()
    with _COMPILED_LOCK:
        graph = _COMPILED.get(key)
        if graph is None:
            if len(_COMPILED) >= 256:  # evolution makes many variants; keep memory bounded
                _COMPILED.clear()
            graph = _COMPILED[key] = build_graph(ctx.spec).compile()
    # A step (model call) takes at most a few super-steps (model, act); the budget ends the
    # graph first, the recursion limit is only the safety net behind it.
    config: RunnableConfig = {"recursion_limit": 4 * ctx.budget.steps + 10}
    final: dict[str, Any] = graph.invoke({}, config, context=ctx)
    return final


def run_task(
    task: Task,
    *,
    spec: AgentSpec,
    model: Model,
    sandbox: SandboxFactory,
    scorer: Scorer,
    run_id: str,
    trial: int = 0,
    memory: AgentMemory | None = None,
    budget: Budget | None = None,
    learn: bool = True,
) -> Attempt:
    """Run ``spec`` with ``model`` on ``task`` (recalling ``memory``) and score the result;
    then, when ``learn`` (and the spec has memory on), let memory learn from it. The engine
    passes ``learn=False``: it stores the attempt first and learns after, so a failure to
    learn loses nothing; here a failure to learn propagates.

    ``budget`` tightens the spec's ``limits``. A budget hit ends the attempt cleanly (its
    ``stop_reason`` says which). ``ModelError`` propagates (fatal for the run); a tool's
    failure is an observation for the model; a scorer never raises for a bad solution, and
    what a workspace does to the snapshot or the scorer is this attempt's result.

    Example:
        attempt = run_task(task, spec=load_spec("tool_coder"), model=model, sandbox=factory,
                           scorer=suite.scorer(), run_id="r1")
        attempt.score.passed, attempt.trajectory.result.stop_reason
    """
    started = time.monotonic()
    use_memory = memory is not None and spec.memory.enabled
    recollection = _recall(memory, task, spec, model) if use_memory and memory else None
    trajectory = Trajectory(
        schema=SCHEMA_VERSION,
        run_id=run_id,
        task_id=task.id,
        trial=trial,
        variant_id=spec.variant_id(),
        model=model.name,
        metadata={
            "spec": spec.name,
            "graph": spec.graph,
            "memory_ids": recollection.ids if recollection else [],
        },
    )
    # Memory adds files (e.g. skills.py); it never replaces one of the task's.
    files: dict[str, str | bytes] = {**(recollection.files if recollection else {}), **task.files}
    box = sandbox(files)
    try:
        ctx = AgentContext(
            task=task.model_copy(update={"hidden": {}}),  # the agent never sees hidden data
            spec=spec,
            model=model,
            sandbox=box,
            sandbox_factory=sandbox,
            tools=get_tools(spec.tools),
            recorder=Recorder(trajectory),
            budget=spec.limits.tighten(budget),
            recollection=recollection,
            started=started,
        )
        final = run_graph(ctx)
        workspace, unscorable = _snapshot(box)
    finally:
        box.close()
    score, failure = _score(scorer, task, workspace, sandbox) if unscorable is None else unscorable
    trajectory.add(Step(kind="score", output=score.model_dump(), duration_s=score.duration_s))
    trajectory.result = Outcome(
        reward=score.reward,
        passed=score.passed,
        error=score.error,
        feedback=score.feedback,
        stop_reason=failure or final.get("stop_reason") or "done",
        trusted=trusted_pass(score),
    )
    trajectory.wall_s = time.monotonic() - started
    if learn and use_memory and memory is not None:
        memory.learn(task, trajectory, score, workspace)
    return Attempt(trajectory=trajectory, score=score, workspace=workspace)


def _failed(stop_reason: str, error: str, started: float) -> tuple[Score, str | None]:
    """The result of an attempt that could not be scored: reward 0, the reason kept."""
    score = Score(
        reward=0.0, passed=False, error=error[:2000], duration_s=time.monotonic() - started
    )
    return score, stop_reason


def _snapshot(box: Sandbox) -> tuple[dict[str, bytes], tuple[Score, str | None] | None]:
    """The final workspace, or nothing and the failed result when it cannot be taken."""
    started = time.monotonic()
    try:
        return box.snapshot(), None
    except SandboxError as exc:
        reason = "workspace_too_large" if isinstance(exc, WorkspaceTooLarge) else "snapshot_failed"
        return {}, _failed(reason, f"snapshot failed: {exc}", started)


def _score(
    scorer: Scorer, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory
) -> tuple[Score, str | None]:
    """The scorer's verdict, or reward 0 and ``score_failed`` when scoring broke on what
    the workspace holds."""
    started = time.monotonic()
    try:
        return scorer.score(task, workspace, sandbox), None
    except SCORE_FAILURES as exc:
        return _failed("score_failed", f"scoring failed: {type(exc).__name__}: {exc}", started)


def _recall(memory: AgentMemory, task: Task, spec: AgentSpec, model: Model) -> Recollection:
    """What memory offers for ``task``, cut to the spec's k's."""
    found = memory.recall(task, variant_id=spec.variant_id(), model=model.name)
    options = spec.memory
    return found.model_copy(
        update={
            "reflections": found.reflections[: options.reflections_k],
            "skills": found.skills[: options.skills_k],
            "insights": found.insights[: options.insights_k],
        }
    )
