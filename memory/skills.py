"""The skill library: verified, versioned, scored Python functions (Voyager's skill library,
plus what it lacks: tests, versions, usage scores).

Lifecycle of a skill (``status`` in its metadata):
- proposed from a trusted pass (``skill_extract``), **inserted only if it is a module of
  pure definitions (``skill_verify.vet``) and its tests pass under the caller's
  ``SkillCheck``** (a sandbox and a judge the skill cannot reach) — a skill whose tests fail
  is never stored;
- a near-duplicate of an active skill (embedding similarity ≥ ``merge_similarity`` AND each
  passes the other's tests, checked the same way) is merged into it (tests and provenance
  added) instead of stored;
- the same name with other behaviour → a new version ``skill:<name>:v<n+1>``; the old one
  becomes ``superseded`` and is kept;
- usage (``retrieved``, ``used``, ``passed_when_used``) gives a UCB score: the mean pass rate
  when used (Beta(1,1) prior) plus an exploration bonus for rarely used skills; ``prune``
  sets ``retired`` on skills used often that rarely help, and can drop retired ones.

Only ``active`` skills are retrieved.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from exapt.memory.base import Check, SkillCheck
from exapt.memory.render import clip
from exapt.memory.skill_extract import SkillProposal
from exapt.memory.skill_verify import verify
from exapt.memory.store import Item, MemoryStore

KIND = "skills"
Status = Literal["active", "superseded", "retired"]


@dataclass
class InsertResult:
    """What became of a proposal: ``inserted``, ``versioned``, ``merged`` or ``rejected``."""

    action: Literal["inserted", "versioned", "merged", "rejected"]
    id: str | None
    reason: str = ""


def skill_id(name: str, version: int) -> str:
    return f"skill:{name}:v{version}"


def ucb(meta: dict[str, Any], total_uses: int, c: float = 0.5) -> float:
    """Mean pass rate when used (prior 1/2) + ``c``·sqrt(ln(N+2)/(used+1))."""
    used = int(meta.get("used", 0))
    passed = int(meta.get("passed_when_used", 0))
    return (passed + 1) / (used + 2) + c * math.sqrt(math.log(total_uses + 2) / (used + 1))


class SkillLibrary:
    """Skills in the ``skills`` collection of a ``MemoryStore``.

    Example:
        lib = SkillLibrary(store)
        result = lib.insert(proposal, check)   # vetted, then its tests judged by ``check``
        lib.search("reverse the words of a sentence", k=3)
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        merge_similarity: float = 0.9,
        min_similarity: float = 0.3,
        exploration: float = 0.5,
    ) -> None:
        self.store = store
        self.merge_similarity = merge_similarity
        self.min_similarity = min_similarity  # below this a skill is not offered at all
        self.exploration = exploration

    # -- insert ---------------------------------------------------------------------------

    def insert(
        self, proposal: SkillProposal, check: SkillCheck, *, instruction: str = ""
    ) -> InsertResult:
        """Vet ``proposal`` and judge its tests with ``check``, then merge, version or insert."""
        verdict = verify(proposal.code, proposal.tests, check)
        if not verdict.ok:
            return InsertResult("rejected", None, verdict.reason)
        document = proposal.document(instruction)
        vector = self.store.embed([document])[0]
        for other in self._near(vector):
            same = _same_behaviour(proposal, other, check)
            if same.ok:
                self._merge(other, proposal)
                return InsertResult("merged", other.id, f"{same.reason} as {other.id}")
        latest = self.latest(proposal.name)
        version = int(latest.metadata.get("version", 0)) + 1 if latest else 1
        now = time.time()
        meta = {
            "kind": "skill",
            "name": proposal.name,
            "version": version,
            "status": "active",
            "signature": proposal.signature,
            "docstring": clip(proposal.docstring, 1000),
            "task_id": proposal.provenance.get("task_id", ""),
            "suite": proposal.provenance.get("suite", ""),
            "run_id": proposal.provenance.get("run_id", ""),
            "variant": proposal.provenance.get("variant", ""),
            "code_hash": hashlib.sha1(proposal.code.encode()).hexdigest()[:12],
            "retrieved": 0,
            "used": 0,
            "passed_when_used": 0,
            "merged": 0,
            "created_at": now,
            "updated_at": now,
            "payload": {
                "code": proposal.code,
                "tests": proposal.tests,
                "provenance": [proposal.provenance],
            },
        }
        new_id = skill_id(proposal.name, version)
        self.store.add(KIND, [new_id], [document], [meta], embeddings=[vector])
        if latest is not None and latest.metadata.get("status") == "active":
            self.store.update(KIND, latest.id, {"status": "superseded", "updated_at": now})
        return InsertResult("versioned" if latest else "inserted", new_id, verdict.reason)

    def _near(self, vector: list[float]) -> list[Item]:
        found = self.store.query(KIND, vector, 3, where={"status": "active"})
        return [i for i in found if (i.similarity or 0) >= self.merge_similarity]

    def _merge(self, item: Item, proposal: SkillProposal) -> None:
        payload = item.payload()
        payload["tests"] = list(dict.fromkeys([*payload.get("tests", []), *proposal.tests]))[:40]
        payload["provenance"] = [*payload.get("provenance", []), proposal.provenance][-20:]
        if proposal.name != item.metadata.get("name"):
            aliases = payload.setdefault("aliases", [])
            if proposal.name not in aliases:
                aliases.append(proposal.name)
        self.store.update(
            KIND,
            item.id,
            {
                "payload": payload,
                "merged": int(item.metadata.get("merged", 0)) + 1,
                "updated_at": time.time(),
            },
        )

    # -- read -----------------------------------------------------------------------------

    def versions(self, name: str) -> list[Item]:
        """Every version of ``name``, oldest first."""
        found = self.store.get(KIND, where={"name": name})
        return sorted(found, key=lambda i: int(i.metadata.get("version", 0)))

    def latest(self, name: str) -> Item | None:
        found = self.versions(name)
        return found[-1] if found else None

    def total_uses(self) -> int:
        return sum(
            int(i.metadata.get("used", 0)) for i in self.store.get(KIND, where={"status": "active"})
        )

    def search(self, query: str | list[float], k: int = 3, *, track: bool = False) -> list[Item]:
        """Up to ``k`` active skills relevant to ``query`` (a task's instruction), ranked by
        similarity plus a small UCB bonus (so proven and untried skills win ties).
        ``track`` counts them as retrieved."""
        if k <= 0:
            return []
        found = self.store.query(KIND, query, 3 * k, where={"status": "active"})
        found = [i for i in found if (i.similarity or 0) >= self.min_similarity]
        if not found:
            return []
        total = sum(int(i.metadata.get("used", 0)) for i in found)
        found.sort(
            key=lambda i: -((i.similarity or 0) + 0.1 * ucb(i.metadata, total, self.exploration))
        )
        found = found[:k]
        if track:
            for item in found:
                self.store.update(
                    KIND, item.id, {"retrieved": int(item.metadata.get("retrieved", 0)) + 1}
                )
        return found

    # -- usage and retiring ---------------------------------------------------------------

    def record_use(self, ids: list[str], solution_code: str, passed: bool) -> list[str]:
        """Count the skills of ``ids`` that ``solution_code`` calls as used, and as passed
        when the attempt passed. Returns the ids counted as used."""
        used_ids = []
        for item in self.store.get(KIND, ids=ids) if ids else []:
            name = str(item.metadata.get("name", ""))
            if not name or not re.search(rf"\b{re.escape(name)}\s*\(", solution_code):
                continue
            used_ids.append(item.id)
            self.store.update(
                KIND,
                item.id,
                {
                    "used": int(item.metadata.get("used", 0)) + 1,
                    "passed_when_used": int(item.metadata.get("passed_when_used", 0)) + int(passed),
                    "updated_at": time.time(),
                },
            )
        return used_ids

    def retire(self, item_id: str) -> None:
        self.store.update(KIND, item_id, {"status": "retired", "updated_at": time.time()})

    def prune(
        self, *, min_uses: int = 5, min_rate: float = 0.2, drop: bool = False
    ) -> dict[str, int]:
        """Retire active skills used at least ``min_uses`` times whose pass rate when used
        (with the 1/2 prior) is below ``min_rate``; with ``drop``, delete retired skills."""
        retired = 0
        for item in self.store.get(KIND, where={"status": "active"}):
            used = int(item.metadata.get("used", 0))
            rate = (int(item.metadata.get("passed_when_used", 0)) + 1) / (used + 2)
            if used >= min_uses and rate < min_rate:
                self.retire(item.id)
                retired += 1
        dropped = 0
        if drop:
            gone = [i.id for i in self.store.get(KIND, where={"status": "retired"})]
            self.store.delete(KIND, gone)
            dropped = len(gone)
        return {"retired": retired, "dropped": dropped}


def _payload_tests(item: Item) -> list[str]:
    tests = item.payload().get("tests", [])
    return [str(t) for t in tests] if isinstance(tests, list) else []


def _same_behaviour(proposal: SkillProposal, other: Item, check: SkillCheck) -> Check:
    """Whether ``proposal`` and the stored ``other`` agree on every input with a known
    answer: each must pass the other's tests (the names bridged by an alias)."""
    other_name = str(other.metadata.get("name", ""))
    other_code = str(other.payload().get("code", ""))
    other_tests = _payload_tests(other)
    if not other_name.isidentifier() or not other_tests:
        return Check(False, "nothing to compare on")
    theirs = check(_aliased(proposal.code, proposal.name, other_name), other_tests)
    if not theirs.ok:
        return Check(False, f"fails {other.id}'s tests: {theirs.reason}")
    ours = check(_aliased(other_code, other_name, proposal.name), proposal.tests)
    if not ours.ok:
        return Check(False, f"{other.id} fails the new tests: {ours.reason}")
    return Check(True, f"same on {len(other_tests) + len(proposal.tests)} tests")


def _aliased(code: str, name: str, alias: str) -> str:
    return code if name == alias else f"{code.rstrip()}\n\n{alias} = {name}\n"


def render_skills_module(items: list[Item]) -> str:
    """``skills.py`` for a workspace: the code of each skill, in ranking order. A skill
    whose helpers clash with an earlier skill's (same name, other code) is left out."""
    import ast

    header = (
        '"""Verified skills from exapt memory. Import what helps: `from skills import NAME`.\n'
        'Each function passed its tests in a sandbox before it was stored."""\n'
    )
    parts = [header]
    defined: dict[str, str] = {}
    for item in items:
        code = str(item.payload().get("code", ""))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        names = {
            n.name: ast.unparse(n)
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        }
        if any(defined.get(n, src) != src for n, src in names.items()):
            continue
        defined.update(names)
        meta = item.metadata
        parts.append(
            f"# --- {item.id} (from task {meta.get('task_id', '?')}) ---\n{code.strip()}\n"
        )
    return "\n\n".join(parts) if len(parts) > 1 else ""


def render_skill_line(item: Item) -> str:
    """``def name(sig): first line of docstring`` for the prompt."""
    meta = item.metadata
    doc = str(meta.get("docstring", "")).strip().splitlines()
    first = doc[0] if doc else ""
    return f"def {meta.get('name')}{meta.get('signature', '()')}: {clip(first, 160)}"
