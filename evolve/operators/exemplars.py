"""``AddExemplarOperator`` / ``PruneExemplarOperator``: few-shot examples in the prompt.

An exemplar is a solved task: what the agent was given and what passed the hidden tests.
They come only from trusted passes (the judge's own evidence) on the feedback split
(train) — never a selection or test task, so a variant is not scored on a task whose answer
is in its own prompt.

A variant keeps its exemplars as data in ``exemplars.json`` (a list of ``{task_id,
input, output}``) and as the prompt ``exemplars`` rendered from it (literal text in a
``{% raw %}`` block), which its main prompt includes at the top:
``completion`` for the completion graph (complete Python files, as a base model reads
them), ``instance`` for the coders (task and solution as Markdown).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from exapt.evolve.base import MutationContext, Proposal
from exapt.evolve.variant import Variant
from exapt.records import Task, Trajectory

EXEMPLARS_FILE = "exemplars.json"
EXEMPLARS_PROMPT = "exemplars"
INCLUDE = '{% include "exemplars" %}'
#: graph -> the prompt that gets the exemplars
MAIN_PROMPT = {"completion": "completion", "text_coder": "instance", "tool_coder": "instance"}
MAX_EXEMPLAR_CHARS = 4000


def exemplars_of(variant: Variant) -> list[dict[str, str]]:
    if EXEMPLARS_FILE not in variant.files:
        return []
    data = json.loads(variant.text(EXEMPLARS_FILE))
    return [dict(e) for e in data] if isinstance(data, list) else []


def with_exemplars(variant: Variant, exemplars: list[dict[str, str]]) -> Variant | None:
    """``variant`` with these exemplars (file, prompt, include); None if its graph has no
    main prompt for them."""
    graph = str(variant.spec_data().get("graph"))
    main = MAIN_PROMPT.get(graph)
    if main is None or main not in variant.prompt_names():
        return None
    child = variant.with_files({EXEMPLARS_FILE: json.dumps(exemplars, indent=1) + "\n"})
    child = child.with_prompt(EXEMPLARS_PROMPT, render(graph, exemplars))
    text = child.prompt(main)
    if INCLUDE not in text:
        child = child.with_prompt(main, f"{INCLUDE}\n{text}")
    return child


def render(graph: str, exemplars: list[dict[str, str]]) -> str:
    """The exemplars as literal prompt text (Jinja does not interpret it)."""
    if not exemplars:
        return ""
    if graph == "completion":
        body = "".join(f"{e['input']}{e['output']}\n\n" for e in exemplars)
    else:
        body = "Solved examples of similar tasks:\n\n" + "".join(
            f"### Task\n{e['input']}\n### Solution\n{e['output']}\n\n" for e in exemplars
        )
    return "{% raw %}" + body + "{% endraw %}"


def extract(graph: str, task: Task, trajectory: Trajectory) -> dict[str, str] | None:
    """The exemplar of a passed attempt, or None when it cannot be read from the steps."""
    if graph == "completion":
        output = _passing_completion(trajectory)
        path = task.metadata.get("file") or (
            next(iter(task.files)) if len(task.files) == 1 else "solution.py"
        )
        source = task.files.get(str(path))
        if output is None or source is None:
            return None
        exemplar = {"task_id": task.id, "input": source, "output": output}
    else:
        calls = [
            s.input.get("arguments") or {}
            for s in trajectory.steps
            if s.kind == "tool" and isinstance(s.input, dict) and s.input.get("name") == "create"
        ]
        written = [f"```write {a.get('path')}\n{a.get('content')}\n```" for a in calls]
        if not written:
            return None
        exemplar = {"task_id": task.id, "input": task.instruction, "output": "\n".join(written)}
    text = exemplar["input"] + exemplar["output"]
    if "endraw" in text or len(text) > MAX_EXEMPLAR_CHARS:
        return None  # would end the raw block early, or crowd the prompt
    return exemplar


def _passing_completion(trajectory: Trajectory) -> str | None:
    """The completion whose visible checks passed (the completion graph checks each round's
    drafts in order, one note each), else the last one."""
    drafts: list[str] = []
    last: str | None = None
    checked = False
    for step in trajectory.steps:
        if step.kind == "model":
            if checked:
                drafts, checked = [], False
            last = _text(step.output)
            drafts.append(last)
        elif step.kind == "note" and isinstance(step.input, dict) and "passed" in step.input:
            checked = True
            if drafts:
                draft = drafts.pop(0)
                if step.input["passed"]:
                    return draft
    return last


def _text(output: Any) -> str:
    if isinstance(output, dict):
        return str(output.get("content") or output.get("text") or "")
    return str(output or "")


@dataclass
class AddExemplarOperator:
    name = "add_exemplar"
    max_exemplars: int = 4
    pool: int = 50
    last_skip: str | None = None

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        current = exemplars_of(parent)
        if len(current) >= self.max_exemplars:
            self.last_skip = f"already {len(current)} exemplars"
            return None
        graph = str(parent.spec_data().get("graph"))
        have = {e["task_id"] for e in current}
        found: list[dict[str, str]] = []
        for trajectory in ctx.passed_trajectories(parent, self.pool):
            task = ctx.task(trajectory.task_id)
            if task is None or task.id in have or any(f["task_id"] == task.id for f in found):
                continue
            exemplar = extract(graph, task, trajectory)
            if exemplar is not None:
                found.append(exemplar)
        if not found:
            self.last_skip = "no passed attempt on the feedback split to take an exemplar from"
            return None
        pick = rng.choice(found)
        child = with_exemplars(parent, [*current, pick])
        if child is None:
            self.last_skip = f"graph {graph!r} has no main prompt for exemplars"
            return None
        return Proposal(
            variant=child,
            operator=self.name,
            description=f"add exemplar {pick['task_id']} ({len(current) + 1} in all)",
            changed_text=pick["input"] + pick["output"],
            metadata={"task_id": pick["task_id"]},
        )


@dataclass
class PruneExemplarOperator:
    name = "prune_exemplar"
    last_skip: str | None = None

    def propose(self, parent: Variant, ctx: MutationContext, rng: random.Random) -> Proposal | None:
        current = exemplars_of(parent)
        if not current:
            self.last_skip = "no exemplar to prune"
            return None
        drop = rng.randrange(len(current))
        kept = current[:drop] + current[drop + 1 :]
        child = with_exemplars(parent, kept)
        if child is None:
            self.last_skip = "the variant's graph has no main prompt for exemplars"
            return None
        return Proposal(
            variant=child,
            operator=self.name,
            description=f"prune exemplar {current[drop]['task_id']} ({len(kept)} left)",
            metadata={"task_id": current[drop]["task_id"]},
        )
