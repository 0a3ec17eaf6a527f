"""exapt's long-term memory: reflections, verified skills and insights in Chroma.

``open_memory()`` gives a ``Memory``, the ``AgentMemory`` the runner uses:

- ``recall(task)`` → a ``Recollection``: this task's reflections and those of similar tasks
  (within a relevance floor), the most relevant active skills (prompt lines + an importable
  ``skills.py``), the strongest insights;
- ``learn(task, trajectory, score, workspace)``: on failure a reflection; on a *trusted*
  pass (``exapt.records.trusted_pass``) skill proposals vetted and judged by the ``check``
  callable, and — with a ``write`` callable and an earlier failure of the same task —
  insight operations; usage of recalled skills either way. A pass that is not trusted
  teaches nothing.

Memory imports neither agents nor tasks: the caller gives it a ``Writer`` (a chat model's
``prompt -> text``) and a ``SkillCheck`` (a judge for skill tests); see ``memory/base.py``.

Example:
    memory = open_memory()                                   # ./.exapt/memory, offline MiniLM
    memory = open_memory("http://127.0.0.1:8000", write=w, check=c)  # a shared Chroma server
    recollection = memory.recall(task)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from exapt.errors import ExaptError
from exapt.memory.base import AgentMemory, Check, Recollection, SkillCheck, Writer
from exapt.memory.embeddings import DEFAULT_EMBEDDER, Embedder, get_embedder
from exapt.memory.insights import Insights
from exapt.memory.reflections import MAX_DISTANCE, Reflections, render_reflection
from exapt.memory.render import actions_digest, clip, is_test_file, solution_code
from exapt.memory.skill_extract import propose
from exapt.memory.skills import SkillLibrary, render_skill_line, render_skills_module
from exapt.memory.store import MemoryStore
from exapt.records import Score, Task, Trajectory, trusted_pass

__all__ = [
    "AgentMemory",
    "Check",
    "Embedder",
    "Memory",
    "MemoryStore",
    "Recollection",
    "SkillCheck",
    "Writer",
    "get_embedder",
    "open_memory",
]

log = logging.getLogger(__name__)

SKILLS_FILE = "skills.py"


class Memory:
    """``AgentMemory`` over one ``MemoryStore``. Thread-safe: one instance may serve a pool
    of workers (several processes should share a Chroma server instead).

    ``write`` writes reflections and insight operations (a chat model); ``None`` gives
    structured reflections and no new insights. ``check`` judges skill tests; ``None``
    learns no skills. ``k_*`` = 0 turns a kind off in ``recall``; ``learn_skills`` /
    ``learn_insights`` turn learning off; ``max_distance`` is the relevance floor (cosine
    distance) for another task's reflections, ``skill_max_distance`` for skills.
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        write: Writer | None = None,
        check: SkillCheck | None = None,
        k_reflections: int = 3,
        k_skills: int = 3,
        k_insights: int = 5,
        learn_skills: bool = True,
        learn_insights: bool = True,
        max_skills_per_solution: int = 5,
        max_distance: float = MAX_DISTANCE,
        skill_max_distance: float = 0.7,
    ) -> None:
        self.store = store
        self.write = write
        self.check = check
        self.k_reflections = k_reflections
        self.k_skills = k_skills
        self.k_insights = k_insights
        self.learn_skills = learn_skills
        self.learn_insights = learn_insights
        self.max_skills_per_solution = max_skills_per_solution
        self.reflections = Reflections(store, max_distance=max_distance)
        self.skills = SkillLibrary(store, min_similarity=1.0 - skill_max_distance)
        self.insights = Insights(store)
        #: what the last ``learn`` calls did (newest last), for reports and tests
        self.events: list[dict[str, Any]] = []
        self._recalled: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()

    def recall(self, task: Task, *, variant_id: str = "", model: str = "") -> Recollection:
        """Memory for one attempt at ``task``; empty lists when nothing relevant is stored."""
        found = Recollection()
        for item in self.reflections.search(task, self.k_reflections):
            found.reflections.append(render_reflection(item, task))
            found.ids.append(item.id)
        if task.language == "python" and self.k_skills > 0:
            skills = self.skills.search(task.instruction, self.k_skills, track=True)
            module = render_skills_module(skills)
            if module and SKILLS_FILE not in task.files:
                found.files[SKILLS_FILE] = module
                found.skills = [render_skill_line(i) for i in skills]
                found.ids += [i.id for i in skills]
                with self._lock:
                    self._recalled[(task.suite, task.id)] = [i.id for i in skills]
        for item in self.insights.top(self.k_insights, suite=task.suite):
            found.insights.append(str(item.metadata.get("text", "")))
            found.ids.append(item.id)
        return found

    def learn(
        self, task: Task, trajectory: Trajectory, score: Score, workspace: dict[str, bytes]
    ) -> None:
        """Store what this scored attempt teaches (see the module docstring)."""
        with self._lock:
            recalled = self._recalled.pop((task.suite, task.id), [])
        code = solution_code(workspace)
        if recalled:
            used = self.skills.record_use(recalled, code, trusted_pass(score))
            self._event(task, "skills_used", ids=used)
        if not score.passed:
            item = self.reflections.add(task, trajectory, score, write=self.write)
            self._event(task, "reflection", id=item.id, source=item.metadata["source"])
            return
        if not trusted_pass(score):  # a pass the judge cannot vouch for teaches nothing
            self._event(task, "untrusted_pass", error=score.error)
            return
        if self.learn_skills and self.check is not None and task.language == "python":
            self._learn_skills(task, trajectory, workspace, self.check)
        if self.learn_insights and self.write is not None:
            self._learn_insights(task, trajectory, code, self.write)

    def _learn_skills(
        self,
        task: Task,
        trajectory: Trajectory,
        workspace: dict[str, bytes],
        check: SkillCheck,
    ) -> None:
        visible = {p: t for p, t in task.files.items() if p.endswith(".py") and is_test_file(p)}
        provenance = {
            "task_id": task.id,
            "suite": task.suite,
            "run_id": trajectory.run_id,
            "variant": trajectory.variant_id,
            "model": trajectory.model,
            "trial": trajectory.trial,
        }
        proposals = propose(
            workspace, visible_tests=visible, instruction=task.instruction, provenance=provenance
        )
        for proposal in proposals[: self.max_skills_per_solution]:
            try:
                result = self.skills.insert(proposal, check, instruction=task.instruction)
            except ExaptError as exc:  # a broken sandbox loses a skill, not the run
                log.warning("skill %s not verified: %s", proposal.name, exc)
                self._event(task, "skill", name=proposal.name, action="error", reason=str(exc))
                continue
            self._event(
                task,
                "skill",
                name=proposal.name,
                action=result.action,
                id=result.id,
                reason=result.reason,
            )

    def _learn_insights(self, task: Task, trajectory: Trajectory, code: str, write: Writer) -> None:
        failures = [
            i
            for i in self.store.get("reflections", where={"task_id": task.id})
            if i.metadata.get("suite") == task.suite and not i.metadata.get("passed")
        ]
        if not failures:
            return
        failure = max(failures, key=lambda i: float(i.metadata.get("created_at", 0)))
        steps = actions_digest(trajectory, n=8, width=200)
        success = f"Solution:\n{clip(code, 1500)}\n\nSteps:\n{steps}"
        done = self.insights.distill(
            write,
            instruction=task.instruction,
            failure=str(failure.metadata.get("text", "")),
            success=success,
            suite=task.suite,
        )
        self._event(task, "insights", **done)

    def _event(self, task: Task, what: str, **data: Any) -> None:
        with self._lock:
            self.events.append({"task_id": task.id, "event": what, **data})
            del self.events[:-200]


def open_memory(
    url: str | None = None,
    *,
    embedder: str = DEFAULT_EMBEDDER,
    write: Writer | None = None,
    check: SkillCheck | None = None,
    **options: Any,
) -> Memory:
    """Open (creating if needed) exapt's memory: ``url`` None → ``<EXAPT_HOME>/memory``, a
    folder path, or ``http://HOST:PORT`` for a Chroma server. ``write`` and ``check`` are
    ``Memory``'s, and so are ``options`` (``k_reflections``, ``learn_skills``, ...).

    Raises ``ConfigError`` for a corrupt or foreign folder, or a memory made with another
    embedder; ``UnavailableError`` when the server does not answer.
    """
    return Memory(MemoryStore(url, embedder=embedder), write=write, check=check, **options)
