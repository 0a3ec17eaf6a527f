"""The improver improves too (STOP, DGM-H): ``MutatorArchive``, an archive of *improvers*.

An improver (a "mutator variant") is a variant folder like any other: its spec is the
coder agent that implements changes (``tool_coder`` or ``text_coder`` with its prompts),
and two more prompts drive ``self_modify``: ``diagnose`` (read a failed attempt, write an
improvement task) and ``implement`` (the coder's instruction). ``default_mutator`` is the
one exapt ships.

With ``--mutator-archive NAME`` the improvers live in their own archive
(``<home>/archive/NAME/``, reusable across runs) and are judged by what they produce:

- every ``self_modify`` child names its improver (``metadata.mutator``); once the child's
  fate is known (accepted, rejected or failed), its *gain* — its mean reward minus its
  parent's on the tasks both were scored on (minus the parent's score if it was never
  scored) — is recorded as one score of the improver (first write wins, so syncing again
  changes nothing, and a resumed run recomputes the same numbers from the archive);
- an improver's score is the mean gain of its judged children; ``choose`` picks by UCB1
  on it (untried improvers first), so good improvers are used more;
- ``improve`` makes a new improver: once the best has ``improve_after`` judged children
  and no descendant, the mutator model rewrites one of its prompts (``diagnose``,
  ``implement`` or the coder's ``system``) from the list of improvement tasks it wrote
  and their gains. The new improver is used (it is untried) and judged the same way.

Example:
    mutators = MutatorArchive("improvers")
    improver = mutators.choose(supports_tools=True)
    mutators.sync(archive)  # after children were judged
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exapt.errors import ConfigError
from exapt.evolve.archive import Archive, archive_root
from exapt.evolve.base import TaskResult
from exapt.evolve.entries import ArchiveEntry
from exapt.evolve.safety import check_template
from exapt.evolve.variant import Variant

PROMPTS = Path(__file__).resolve().parent / "prompts"
FINAL = ("accepted", "rejected", "failed")
#: The prompts of an improver that the meta step may rewrite.
IMPROVABLE = ("diagnose", "implement", "system")
_FENCE = re.compile(r"```[^\n`]*\n(.*?)\n?```", re.DOTALL)


def default_mutator(supports_tools: bool) -> Variant:
    """exapt's own improver: the built-in coder for the mutator model (tool calls or text
    actions) with the ``diagnose`` and ``implement`` prompts."""
    from exapt.agents import load_spec

    coder = load_spec("tool_coder" if supports_tools else "text_coder")
    base = Variant.from_spec(coder.with_changes(name=f"improver_{coder.name}"))
    return base.with_prompt(
        "diagnose", (PROMPTS / "self_modify_diagnose.md.j2").read_text()
    ).with_prompt("implement", (PROMPTS / "self_modify_implement.md.j2").read_text())


@dataclass
class Gain:
    child_id: str
    gain: float
    improvement: str


def child_gain(archive: Archive, entry: ArchiveEntry) -> float:
    """The child's mean reward minus its parent's, on the selection tasks both have."""
    mine = archive.scores(entry.variant_id, "select")
    parent = archive.scores(entry.parent_id, "select") if entry.parent_id else {}
    both = [t for t in mine if t in parent]
    if both:
        return sum(mine[t].reward - parent[t].reward for t in both) / len(both)
    base = archive.entry(entry.parent_id).score if entry.parent_id else 0.0
    return -base if not mine else sum(r.reward for r in mine.values()) / len(mine) - base


class MutatorArchive:
    """Improvers in archive ``name`` (see the module docstring); ``name`` None = the default
    improver only, nothing recorded."""

    def __init__(self, name: str | None, *, improve_after: int = 2) -> None:
        self.name = name
        self.improve_after = improve_after
        self._archive: Archive | None = None

    def archive(self, supports_tools: bool) -> Archive | None:
        if self.name is None:
            return None
        if self._archive is None:
            if (archive_root(self.name) / "archive.sqlite").exists():
                self._archive = Archive.open(self.name)
                if self._archive.meta("kind") != "mutators":
                    raise ConfigError(
                        f"archive {self.name!r} is not an archive of improvers",
                        hint="give --mutator-archive a name of its own",
                    )
            else:
                self._archive = Archive.create(self.name, {"kind": "mutators"})
                self._archive.set_meta("kind", "mutators")
            if not self._archive.entries():
                seed = default_mutator(supports_tools)
                entry = ArchiveEntry(variant_id=seed.id, description="exapt's improver",
                                     status="accepted", stage=0)  # fmt: skip
                self._archive.add(entry, seed)
        return self._archive

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def choose(self, supports_tools: bool) -> Variant:
        """The improver to use next: UCB1 on mean gain, untried ones first (in the order
        they were made); the default improver without an archive."""
        archive = self.archive(supports_tools)
        if archive is None:
            return default_mutator(supports_tools)
        entries = [e for e in archive.entries() if e.status == "accepted"]
        total = sum(e.n_scored for e in entries)

        def ucb(e: ArchiveEntry) -> float:
            if e.n_scored == 0:
                return math.inf
            return e.score + math.sqrt(2 * math.log(total + 1) / e.n_scored)

        best = max(entries, key=ucb)  # max keeps the first of equals: the oldest
        return archive.variant(best.variant_id)

    def sync(self, main: Archive | None) -> None:
        """Record the gain of every judged ``self_modify`` child of ``main`` on its improver."""
        archive = self._archive
        if archive is None or main is None:
            return
        for entry in main.entries():
            improver = entry.metadata.get("mutator")
            if entry.operator != "self_modify" or entry.status not in FINAL or not improver:
                continue
            if not archive.has(improver) or entry.variant_id in archive.scores(improver):
                continue
            improvement = str(entry.metadata.get("improvement", ""))[:4000]
            result = TaskResult(
                variant_id=improver,
                task_id=entry.variant_id,
                reward=child_gain(main, entry),
                feedback=improvement,
            )
            archive.record_score(result, split="select", fresh=False)
            archive.update(improver)

    def gains(self, improver_id: str) -> list[Gain]:
        archive = self._archive
        if archive is None:
            return []
        return [Gain(child, r.reward, r.feedback)
                for child, r in sorted(archive.scores(improver_id, "select").items())]  # fmt: skip

    def improve(self, model: Any, rng: Any) -> tuple[Variant | None, float, int]:
        """Maybe a new improver (module docstring): (it or None, cost, tokens)."""
        archive = self._archive
        if archive is None:
            return None, 0.0, 0
        entries = archive.entries()
        parents = {p for e in entries for p in e.parent_ids}
        ready = [e for e in entries if e.n_scored >= self.improve_after
                 and e.variant_id not in parents and e.status == "accepted"]  # fmt: skip
        if not ready:
            return None, 0.0, 0
        best = max(ready, key=lambda e: e.score)
        parent = archive.variant(best.variant_id)
        component = rng.choice([c for c in IMPROVABLE if c in parent.prompt_names()])
        request = _improve_request(component, parent.prompt(component), self.gains(parent.id))
        if getattr(model, "is_base", False):
            reply = model.complete(request, max_tokens=1024)
        else:
            reply = model.chat([{"role": "user", "content": request}], max_tokens=2048)
        cost, tokens = reply.cost_usd, reply.tokens_in + reply.tokens_out
        match = _FENCE.search(reply.text or "")
        if match is None or match.group(1).strip() == parent.prompt(component).strip():
            return None, cost, tokens
        try:
            check_template(component, match.group(1))
            child = parent.with_prompt(component, match.group(1))
            child.load_spec()
        except ConfigError:
            return None, cost, tokens
        if archive.has(child.id):
            return None, cost, tokens
        entry = ArchiveEntry(
            variant_id=child.id, parent_ids=[parent.id], generation=best.generation + 1,
            operator="self_improve", status="accepted", stage=0,
            description=f"rewrote {component!r} from {best.n_scored} judged children",
            mutation_cost_usd=cost, change_text=match.group(1),
        )  # fmt: skip
        archive.add(entry, child)
        return child, cost, tokens


def _improve_request(component: str, current: str, gains: list[Gain]) -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    template = env.from_string((PROMPTS / "self_modify_improve.md.j2").read_text())
    return template.render(component=component, current=current, children=gains)
