"""Reflections: a short lesson written after a failed attempt (Reflexion, ExpeL), stored
under the task's embedding and put into the prompt of later attempts and similar tasks.

Who writes the lesson: a chat model, if one is given (prompt: ``prompts/reflection.md``);
otherwise — a base model, no model, or a model call that failed — a structured summary of
the error (the last error / assert lines of the tests, what the agent tried, why it stopped).
Writing a reflection never raises because the model misbehaved.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from exapt.errors import ExaptError
from exapt.memory.render import clip, error_lines, render, steps_digest, tried
from exapt.memory.store import Item, MemoryStore
from exapt.records import Score, Task, Trajectory

if TYPE_CHECKING:
    from exapt.agents.models.base import Model

KIND = "reflections"
MAX_CHARS = 800  # a lesson is a few sentences; a rambling model is cut


def summarize(task: Task, trajectory: Trajectory, score: Score) -> str:
    """The structured lesson used without a chat model: deterministic, a few lines."""
    outcome = trajectory.result
    stop = outcome.stop_reason or "unknown"
    parts = [f"Failed (reward {score.reward:.2f}, stopped: {stop})."]
    errors = error_lines(score.feedback or outcome.feedback or "")
    if score.error or outcome.error:
        errors.append(clip(str(score.error or outcome.error), 200))
    if errors:
        parts.append("Tests said: " + " | ".join(errors))
    actions = tried(trajectory)
    if actions:
        parts.append("Tried: " + "; ".join(actions) + ".")
    if stop in ("max_steps", "max_tokens", "max_cost", "max_wall"):
        parts.append("Ran out of budget: submit a complete solution earlier.")
    elif errors:
        parts.append("Next time: make the failing case above pass before submitting.")
    return clip(" ".join(parts), MAX_CHARS)


def write_lesson(
    task: Task, trajectory: Trajectory, score: Score, model: Model | None
) -> tuple[str, str]:
    """The lesson text and who wrote it (``model`` or ``summary``)."""
    if model is not None and not getattr(model, "is_base", False):
        prompt = render(
            "reflection",
            instruction=clip(task.instruction, 2000),
            steps=steps_digest(trajectory),
            feedback=clip(score.feedback or trajectory.result.feedback or "", 1500),
            reward=score.reward,
            stop_reason=trajectory.result.stop_reason,
        )
        try:
            reply = model.chat([{"role": "user", "content": prompt}])
        except ExaptError:  # the model is down or out of budget: fall back, never fail the run
            reply = None
        text = (reply.text or "").strip() if reply is not None else ""
        if text:
            return clip(text, MAX_CHARS), "model"
    return summarize(task, trajectory, score), "summary"


class Reflections:
    """Reflections in the ``reflections`` collection of a ``MemoryStore``.

    Example:
        refl = Reflections(store)
        refl.add(task, trajectory, score, model=None)
        refl.search(task, k=3)   # same task first, then the most similar tasks
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def add(
        self,
        task: Task,
        trajectory: Trajectory,
        score: Score,
        model: Model | None = None,
        text: str | None = None,
    ) -> Item:
        """Write (unless ``text`` is given) and store the lesson of one scored attempt.
        Storing the same attempt (run, task, trial, variant) twice overwrites it."""
        source = "given"
        if text is None:
            text, source = write_lesson(task, trajectory, score, model)
        key = "|".join(
            [trajectory.run_id, task.suite, task.id, str(trajectory.trial), trajectory.variant_id]
        )
        item_id = "reflection:" + hashlib.sha1(key.encode()).hexdigest()[:16]
        meta: dict[str, Any] = {
            "kind": "reflection",
            "text": text,
            "source": source,
            "suite": task.suite,
            "task_id": task.id,
            "passed": bool(score.passed),
            "reward": float(score.reward),
            "variant": trajectory.variant_id,
            "model": trajectory.model or (getattr(model, "name", "") if model else ""),
            "trial": int(trajectory.trial),
            "run_id": trajectory.run_id,
            "stop_reason": trajectory.result.stop_reason,
            "created_at": time.time(),
        }
        self.store.add(KIND, [item_id], [task.instruction], [meta])
        return Item(item_id, KIND, task.instruction, meta)

    def search(self, task: Task | str, k: int = 3) -> list[Item]:
        """Up to ``k`` reflections: this task's own (latest trial first), then those of the
        most similar other tasks (by instruction embedding)."""
        if k <= 0:
            return []
        if isinstance(task, str):
            return self.store.query(KIND, task, k)
        own = self.store.get(KIND, where={"task_id": task.id})
        own = [i for i in own if i.metadata.get("suite") == task.suite]
        own.sort(
            key=lambda i: (
                -int(i.metadata.get("trial", 0)),
                -float(i.metadata.get("created_at", 0)),
            )
        )
        for item in own:
            item.similarity = 1.0
        found = own[:k]
        if len(found) < k:
            seen = {i.id for i in found}
            near = self.store.query(KIND, task.instruction, k + len(own))
            found += [i for i in near if i.id not in seen][: k - len(found)]
        return found


def render_reflection(item: Item, task: Task | None = None) -> str:
    """One line for a prompt: whose lesson it is, then the lesson."""
    meta = item.metadata
    text = str(meta.get("text", ""))
    if task is not None and meta.get("task_id") == task.id:
        return f"(this task, trial {meta.get('trial', 0)}) {text}"
    return f"(similar task {meta.get('task_id', '?')}) {text}"
