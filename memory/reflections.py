"""Reflections: a short lesson written after a failed attempt (Reflexion, ExpeL), stored
under the task's embedding and put into the prompt of later attempts and similar tasks.

Who writes the lesson: a ``Writer`` (a chat model), if one is given (prompt:
``prompts/reflection.md``); otherwise — no writer, or one that failed — a structured summary
of the error (the last error lines of the score's feedback, what the agent tried, why it
stopped). Writing a reflection never raises because the writer misbehaved.

What a lesson is built from (the poisoning rules): only the score's feedback (which the
judge keeps honest) and the agent's own actions — never tool observations or notes (what
the solution printed reaches those), and never a line that quotes the task's hidden data.
A lesson is recalled for its own task, and for another task only when that task's
instruction is within ``max_distance`` (cosine) of the lesson's.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from exapt.errors import ExaptError
from exapt.memory.base import Writer
from exapt.memory.render import (
    actions_digest,
    clip,
    error_lines,
    hidden_lines,
    render,
    scrub,
    tried,
)
from exapt.memory.store import Item, MemoryStore
from exapt.records import Score, Task, Trajectory

KIND = "reflections"
MAX_CHARS = 800  # a lesson is a few sentences; a rambling model is cut
#: Another task's lesson is offered only this close (cosine distance) to the new task:
#: paraphrases of one task measure 0.18-0.26 with MiniLM, unrelated tasks 0.66 and more.
MAX_DISTANCE = 0.5


def trusted_feedback(task: Task, score: Score) -> str:
    """The score's feedback without any line that quotes the task's hidden data."""
    return scrub(score.feedback or "", hidden_lines(task.hidden))


def summarize(task: Task, trajectory: Trajectory, score: Score) -> str:
    """The structured lesson used without a chat model: deterministic, a few lines."""
    outcome = trajectory.result
    stop = outcome.stop_reason or "unknown"
    parts = [f"Failed (reward {score.reward:.2f}, stopped: {stop})."]
    errors = error_lines(trusted_feedback(task, score))
    if score.error:
        errors.append(clip(scrub(str(score.error), hidden_lines(task.hidden)), 200))
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
    task: Task, trajectory: Trajectory, score: Score, write: Writer | None
) -> tuple[str, str]:
    """The lesson text and who wrote it (``model`` or ``summary``)."""
    if write is not None:
        prompt = render(
            "reflection",
            instruction=clip(task.instruction, 2000),
            steps=actions_digest(trajectory),
            feedback=clip(trusted_feedback(task, score), 1500),
            reward=score.reward,
            stop_reason=trajectory.result.stop_reason,
        )
        try:
            text = write(prompt).strip()
        except ExaptError:  # the model is down or out of budget: fall back, never fail the run
            text = ""
        # The writer read the feedback: whatever it quotes of the hidden data is cut again.
        text = scrub(text, hidden_lines(task.hidden)).strip()
        if text:
            return clip(text, MAX_CHARS), "model"
    return summarize(task, trajectory, score), "summary"


class Reflections:
    """Reflections in the ``reflections`` collection of a ``MemoryStore``.

    Example:
        refl = Reflections(store)
        refl.add(task, trajectory, score, write=None)
        refl.search(task, k=3)   # same task first, then similar tasks above the floor
    """

    def __init__(self, store: MemoryStore, *, max_distance: float = MAX_DISTANCE) -> None:
        self.store = store
        self.max_distance = max_distance

    def add(
        self,
        task: Task,
        trajectory: Trajectory,
        score: Score,
        write: Writer | None = None,
        text: str | None = None,
    ) -> Item:
        """Write (unless ``text`` is given) and store the lesson of one scored attempt.
        Storing the same attempt (run, task, trial, variant) twice overwrites it."""
        source = "given"
        if text is None:
            text, source = write_lesson(task, trajectory, score, write)
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
            "model": trajectory.model,
            "trial": int(trajectory.trial),
            "run_id": trajectory.run_id,
            "stop_reason": trajectory.result.stop_reason,
            "created_at": time.time(),
        }
        self.store.add(KIND, [item_id], [task.instruction], [meta])
        return Item(item_id, KIND, task.instruction, meta)

    def search(self, task: Task | str, k: int = 3) -> list[Item]:
        """Up to ``k`` reflections: this task's own (latest trial first), then those of the
        most similar other tasks (by instruction embedding) within ``max_distance``."""
        if k <= 0:
            return []
        if isinstance(task, str):
            return self._near(self.store.query(KIND, task, k))
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
            near = self._near(self.store.query(KIND, task.instruction, k + len(own)))
            found += [i for i in near if i.id not in seen][: k - len(found)]
        return found

    def _near(self, items: list[Item]) -> list[Item]:
        return [i for i in items if 1.0 - (i.similarity or 0.0) <= self.max_distance]


def render_reflection(item: Item, task: Task | None = None) -> str:
    """One line for a prompt: whose lesson it is, then the lesson."""
    meta = item.metadata
    text = str(meta.get("text", ""))
    if task is not None and meta.get("task_id") == task.id:
        return f"(this task, trial {meta.get('trial', 0)}) {text}"
    return f"(similar task {meta.get('task_id', '?')}) {text}"
