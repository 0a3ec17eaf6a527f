"""``SelfModifyOperator``: the agent diagnoses its own failure and a coder rewrites its source
(the Darwin Gödel Machine's move), with the code running where it cannot hurt.

1. **Diagnose.** The improver's ``diagnose`` prompt shows the mutator model the parent's
   files (spec, prompts, ``agent.py``), one failed attempt on the feedback split (its model
   and tool calls, shortened) and the scorer's visible feedback (``Score.feedback``, with
   any line quoting the task's hidden data cut) — never ``task.hidden``. It answers with an
   improvement task.
2. **Implement.** exapt's coder agent (the improver's spec: ``tool_coder`` or
   ``text_coder``) gets the ``implement`` prompt with that task, on a copy of the parent's
   folder as its workspace (plus the built-in graphs' source in ``.reference/``), through
   the engine, in a sandbox; the attempt is stored like any other (``self-modify-...`` run).
3. **Check.** The final workspace (minus ``.reference/`` and caches) is the child: it must
   differ from the parent, load (``Variant.load_spec``: no host code, prompts allowed) and,
   when it carries code, build its graph *in the sandbox*; the staged evaluation then
   gives it the smoke task first. The diff against the parent, the improvement task and
   the improver's id are kept in the archive entry's metadata.

Improvers come from ``MutatorArchive`` (``mutators.py``): the default one, or with
``mutator_archive`` an archive of them judged by the gains of their children.

Works with a ``ScriptedModel`` as the mutator in tests.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.base import MutationContext, Proposal
from exapt.evolve.mutators import MutatorArchive
from exapt.evolve.safety import redact_feedback
from exapt.evolve.variant import Variant
from exapt.records import Score, Task, Trajectory

REFERENCE = ".reference/"
#: Built-in graph sources the coder may start an ``agent.py`` from.
GRAPH_SOURCES = ("loop.py", "tool_coder.py", "text_coder.py", "text_actions.py", "completion.py")


@dataclass
class SelfModifyOperator:
    name = "self_modify"
    mutator_archive: str | None = None
    file_chars: int = 6000
    step_chars: int = 600
    max_steps_shown: int = 30
    last_skip: str | None = None
    skip_cost: tuple[float, int] = (0.0, 0)
    _mutators: MutatorArchive | None = field(default=None, repr=False)

    @property
    def mutators(self) -> MutatorArchive:
        if self._mutators is None:
            self._mutators = MutatorArchive(self.mutator_archive)
        return self._mutators

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        self.skip_cost = (0.0, 0)
        failed = ctx.failed_trajectories(parent, 1)
        if not failed:
            self.last_skip = "the parent failed no feedback task: nothing to learn from"
            return None
        trajectory = failed[0]
        task = ctx.task(trajectory.task_id)
        if task is None:
            self.last_skip = f"task {trajectory.task_id} is not a feedback task"
            return None
        model = ctx.mutator()
        tools = bool(getattr(model, "supports_tools", False)) and not getattr(model, "is_base", 0)
        self.mutators.archive(tools)
        self.mutators.sync(getattr(ctx, "archive", None))
        cost, tokens = 0.0, 0
        new, c, t = self.mutators.improve(model, rng)
        cost, tokens = cost + c, tokens + t
        improver = self.mutators.choose(tools)
        coder = improver.load_spec()
        # 1. diagnose
        request = self.diagnosis(coder.prompts, parent, task, trajectory)
        reply = _ask(model, request)
        cost, tokens = cost + reply.cost_usd, tokens + reply.tokens_in + reply.tokens_out
        improvement = _improvement(reply.text)
        if not improvement:
            return self._skip("the diagnosis wrote no improvement task", cost, tokens)
        # 2. implement, in a sandbox, through the engine
        from exapt.agents.templates import render

        instruction = render(coder.prompts, "implement", coder.name, improvement=improvement)
        workspace, spent, run_id = _implement(ctx, coder, model, parent, instruction)
        cost, tokens = cost + spent[0], tokens + spent[1]
        # 3. check the child
        try:
            child = Variant(_child_files(workspace))
        except ConfigError as exc:
            return self._skip(f"the coder left no variant: {exc.message}", cost, tokens)
        if child.id == parent.id:
            return self._skip("the coder changed nothing", cost, tokens)
        try:
            spec = child.load_spec()
        except ConfigError as exc:
            return self._skip(f"the child does not load: {exc.message}", cost, tokens)
        if spec.carries_code and (why := _build_check(ctx, spec)) is not None:
            return self._skip(f"the child's graph does not build: {why}", cost, tokens)
        diff = child.diff(parent)
        return Proposal(
            variant=child,
            operator=self.name,
            description=f"self-modify: {improvement.splitlines()[0][:160]}",
            changed_text=improvement + "\n" + diff,
            cost_usd=cost,
            tokens=tokens,
            metadata={"mutator": improver.id, "improvement": improvement[:4000],
                      "diff": diff[:20000], "failed_task": trajectory.task_id,
                      "coder_run": run_id, "new_mutator": new.id if new else None},
        )  # fmt: skip

    def close(self) -> None:
        if self._mutators is not None:
            self._mutators.close()

    def diagnosis(
        self, prompts: dict[str, str], parent: Variant, task: Task, trajectory: Trajectory
    ) -> str:
        """The diagnose prompt for one failed attempt: the parent's files, the public task,
        what the agent did, the visible feedback (redacted) — never the hidden tests."""
        from exapt.agents.templates import render

        files = [{"path": p, "text": _cut(parent.text(p), self.file_chars)}
                 for p in sorted(parent.files)]  # fmt: skip
        feedback = redact_feedback(trajectory.result.feedback or "(none)", task.hidden)
        steps = _steps(trajectory, self.step_chars, self.max_steps_shown)
        return render(
            prompts, "diagnose", "improver",
            files=files, instruction=task.instruction, trajectory=steps, feedback=feedback,
        )  # fmt: skip

    def _skip(self, reason: str, cost: float, tokens: int) -> Proposal | None:
        self.last_skip = reason
        self.skip_cost = (cost, tokens)
        return None


def _ask(model: Any, request: str) -> Any:
    if getattr(model, "is_base", False):
        return model.complete(request, max_tokens=1024)
    return model.chat([{"role": "user", "content": request}], max_tokens=2048)


def _improvement(text: str) -> str:
    head, mark, tail = (text or "").partition("IMPROVEMENT:")
    return (tail if mark else head).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n[... {len(text) - limit} cut]"


def _steps(t: Trajectory, chars: int, limit: int) -> str:
    """What the agent did, one line block per step (model output, tool call, observation)."""
    lines = []
    for step in [s for s in t.steps if s.kind in ("model", "tool")][-limit:]:
        if step.kind == "model":
            out = step.output if isinstance(step.output, dict) else {"content": step.output}
            text = str(out.get("content") or "")
            for call in out.get("tool_calls") or []:
                fn = call.get("function") or {}
                text += f"\n-> {fn.get('name')}({fn.get('arguments')})"
            lines.append(f"[model] {_cut(text.strip(), chars)}")
        else:
            lines.append(f"[observation] {_cut(str(step.output), chars)}")
    return "\n".join(lines) or "(no steps)"


class _ChildScorer:
    """The coder's verdict: its workspace makes a variant that loads (no code runs here)."""

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: Any) -> Score:
        try:
            Variant(_child_files(workspace)).load_spec()
        except ConfigError as exc:
            return Score(reward=0.0, passed=False, feedback=f"not a loadable variant: {exc}")
        return Score(reward=1.0, passed=True, feedback="the folder loads as a variant")


@dataclass
class _ChildSuite:
    name: str = "self_modify"

    def tasks(self) -> Iterator[Task]:
        return iter(())

    def scorer(self) -> _ChildScorer:
        return _ChildScorer()


def _child_files(workspace: dict[str, bytes]) -> dict[str, bytes]:
    return {
        path: data
        for path, data in workspace.items()
        if not path.startswith(REFERENCE)
        and "__pycache__" not in path.split("/")
        and not path.endswith(".pyc")
    }


def _reference() -> dict[str, str]:
    from exapt.agents import graphs

    folder = Path(graphs.__file__).parent
    return {f"{REFERENCE}graphs/{name}": (folder / name).read_text() for name in GRAPH_SOURCES}


def _implement(
    ctx: MutationContext, coder: Any, model: Any, parent: Variant, instruction: str
) -> tuple[dict[str, bytes], tuple[float, int], str]:
    """Run the coder on a copy of ``parent``'s folder; (final workspace, (cost, tokens),
    run id). A model or sandbox failure raises (like any evaluation's)."""
    from exapt.engine import Engine, LocalExecutor, Target
    from exapt.evolve.evaluator import EvaluationFailed
    from exapt.tasks import sandbox_factory

    evaluator = getattr(ctx, "evaluator", None)
    backend = getattr(evaluator, "backend", "default")
    from exapt.memory.trajectories import TrajectoryStore

    given = getattr(evaluator, "store", None)
    store = given if given is not None else TrajectoryStore()
    files = {p: parent.text(p) for p in parent.files}
    task = Task(
        id=f"self-modify/{parent.id}",
        suite="self_modify",
        instruction=instruction,
        files={**files, **_reference()},
    )
    run_id = f"self-modify-{parent.id}-{secrets.token_hex(4)}"  # each try is its own run
    try:
        engine = Engine(store, LocalExecutor(1), keep_workspaces=True)
        target = Target(model=model, suite=_ChildSuite(), sandbox=sandbox_factory(backend),
                        spec=coder)  # fmt: skip
        evaluation = engine.evaluate(target, [task], run_id=run_id)
    finally:
        if given is None:
            store.close()
    if evaluation.status == "failed":
        raise EvaluationFailed(
            f"self_modify: the coder's run failed: {evaluation.error}",
            hint="a model or sandbox failure; fix it and resume",
        )
    if not evaluation.attempts:
        return {}, (0.0, 0), run_id
    a = evaluation.attempts[0]
    t = a.trajectory
    return a.workspace, (t.cost_usd, t.tokens_in + t.tokens_out), run_id


def _build_check(ctx: MutationContext, spec: Any) -> str | None:
    from exapt.agents.remote.host import build_check
    from exapt.tasks import sandbox_factory

    evaluator = getattr(ctx, "evaluator", None)
    factory = getattr(evaluator, "sandbox", None) or sandbox_factory("default")
    return build_check(spec, factory)
