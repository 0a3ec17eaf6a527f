"""The mutation operators, operator choice, the novelty filter, stage plans and the paired
bootstrap, each on its own."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from exapt.agents import load_spec, run_task
from exapt.agents.models import ScriptedModel
from exapt.agents.templates import render
from exapt.errors import ConfigError
from exapt.evolve.base import Candidate
from exapt.evolve.choice import FixedWeights, GainBandit, Use, parse_weights
from exapt.evolve.novelty import NoveltyFilter
from exapt.evolve.operators import make_operator
from exapt.evolve.operators.exemplars import exemplars_of, extract, with_exemplars
from exapt.evolve.operators.graph_options import GraphOptionsOperator
from exapt.evolve.operators.merge import MergeOperator, merge_components
from exapt.evolve.safety import redact_feedback
from exapt.evolve.staged import StagePlan
from exapt.evolve.stats import paired_bootstrap
from exapt.evolve.variant import Variant
from exapt.records import Task
from exapt.tasks import sandbox_factory


def completion_seed() -> Variant:
    return Variant.from_spec(load_spec("completion"))


# --- graph options ----------------------------------------------------------------------


def test_graph_options_moves_one_knob_one_rung() -> None:
    seed = completion_seed()
    seen = set()
    for i in range(40):
        proposal = GraphOptionsOperator().propose(seed, None, random.Random(i))  # type: ignore[arg-type]
        assert proposal is not None
        knob, old, new = (proposal.metadata[k] for k in ("knob", "from", "to"))
        seen.add(knob)
        assert proposal.variant.options()[knob] == new != old
        changed = {k for k, v in proposal.variant.options().items() if seed.options().get(k) != v}
        assert changed == {knob} or (knob == "samples" and changed == {"samples", "temperature"})
        if knob == "samples" and new > 1:
            assert proposal.variant.options()["temperature"] > 0  # more samples need sampling
        proposal.variant.load_spec()
    assert seen == {"temperature", "samples", "retries", "max_new_tokens"}
    # The memory k's move only when asked (evolve evaluates with memory off).
    knobs = {GraphOptionsOperator(memory_knobs=True).propose(seed, None, random.Random(i))
             .metadata["knob"] for i in range(60)}  # type: ignore[arg-type]  # fmt: skip
    assert {"reflections_k", "skills_k", "insights_k"} <= knobs


# --- merge ------------------------------------------------------------------------------


def test_merge_components_follows_gepa_rules() -> None:
    ancestor = {"a": "0", "b": "0", "c": "0", "d": "0"}
    mine = {"a": "1", "b": "0", "c": "1", "d": "0"}  # changed a and c
    theirs = {"a": "0", "b": "2", "c": "2", "d": "0"}  # changed b and c (differently)
    merged, taken = merge_components(mine, theirs, ancestor, prefer_other=False)
    assert merged == {"a": "1", "b": "2", "c": "1", "d": "0"} and taken == ["b"]
    merged, taken = merge_components(mine, theirs, ancestor, prefer_other=True)
    assert merged == {"a": "1", "b": "2", "c": "2", "d": "0"} and taken == ["b", "c"]


class Ctx:
    def __init__(self, variants: dict[str, Variant], cands: list[Candidate],
                 parents: dict[str, list[str]]) -> None:  # fmt: skip
        self.variants, self.cands, self.parents = variants, cands, parents

    def variant(self, vid: str) -> Variant:
        return self.variants[vid]

    def population(self) -> list[Candidate]:
        return self.cands

    def ancestors(self, vid: str) -> list[str]:
        out, stack = set(), list(self.parents.get(vid, []))
        while stack:
            v = stack.pop()
            out.add(v)
            stack.extend(self.parents.get(v, []))
        return sorted(out)


def test_merge_takes_each_sides_change_against_the_common_ancestor() -> None:
    seed = completion_seed()
    hot = seed.with_options(temperature=0.6)
    long = seed.with_options(max_new_tokens=512)
    variants = {v.id: v for v in (seed, hot, long)}
    cands = [Candidate(seed.id, None, 0, 0.1), Candidate(hot.id, seed.id, 1, 0.2),
             Candidate(long.id, seed.id, 1, 0.3)]  # fmt: skip
    ctx = Ctx(variants, cands, {hot.id: [seed.id], long.id: [seed.id]})
    proposal = MergeOperator().propose(hot, ctx, random.Random(0))  # type: ignore[arg-type]
    assert proposal is not None and proposal.other_parents == [long.id]
    options = proposal.variant.options()
    assert options["temperature"] == 0.6 and options["max_new_tokens"] == 512
    assert proposal.variant.id == seed.with_options(temperature=0.6, max_new_tokens=512).id
    # A member and its own ancestor do not merge; nor does a lone member.
    assert MergeOperator().propose(seed, ctx, random.Random(0)) is None  # type: ignore[arg-type]


# --- exemplars --------------------------------------------------------------------------


ADD_LINE = {
    "id": "ex/add", "instruction": "Complete add.",
    "files": {"solution.py": 'def add(a, b):\n    """Add two numbers."""\n'},
    "tests": {"test_add.py": "from solution import add\nassert add(2, 3) == 5\n"},
    "test_command": "python3 test_add.py", "timeout_s": 10,
    "metadata": {"entry_point": "add", "visible_tests": ["assert candidate(1, 1) == 2"]},
}  # fmt: skip


def add_suite() -> Any:
    from exapt.tasks.jsonl import parse_line

    return parse_line(ADD_LINE, Path("add.jsonl"), 1, "jsonl:add.jsonl")


def add_task() -> Task:
    task: Task = add_suite()
    return task


def attempt_of(task: Task, model: ScriptedModel, backend: str) -> Any:
    from exapt.tasks.jsonl import JsonlScorer

    return run_task(task, spec=load_spec("completion"), model=model, run_id="r",
                    sandbox=sandbox_factory(backend), scorer=JsonlScorer())  # fmt: skip


def test_an_exemplar_is_the_completion_that_passed(bwrap: str) -> None:
    model = ScriptedModel(
        {"It failed with": "    return a + b\n", "def add": "    return a - b\n"}, is_base=True
    )
    attempt = attempt_of(add_task(), model, bwrap)
    assert attempt.score.passed  # the second sample passed the hidden test
    exemplar = extract("completion", add_task(), attempt.trajectory)
    assert exemplar == {"task_id": "ex/add", "input": add_task().files["solution.py"],
                        "output": "    return a + b\n"}  # fmt: skip
    child = with_exemplars(completion_seed(), [exemplar])
    assert child is not None and exemplars_of(child) == [exemplar]
    spec = child.load_spec()
    text = render(spec.prompts, "completion", "c", prompt="def mul(a, b):\n", failed=None,
                  recollection=None, task={}, tools=[], options={})  # fmt: skip
    assert text.startswith('def add(a, b):\n    """Add two numbers."""\n    return a + b\n')
    assert text.rstrip().endswith("def mul(a, b):")


def test_exemplar_text_stays_literal_and_cannot_break_out(bwrap: str) -> None:
    braces = {"task_id": "t", "input": "x = '{{ task.hidden }}'\n", "output": "y = 1\n"}
    child = with_exemplars(completion_seed(), [braces])
    assert child is not None
    spec = child.load_spec()
    text = render(spec.prompts, "completion", "c", prompt="", failed=None, recollection=None,
                  task={}, tools=[], options={})  # fmt: skip
    assert "{{ task.hidden }}" in text  # shown, not evaluated
    model = ScriptedModel(["{% endraw %}{{ ''.__class__ }}"], is_base=True)
    evil_task = add_task().model_copy(update={"metadata": {"entry_point": "add"}})
    attempt = attempt_of(evil_task, model, bwrap)
    assert extract("completion", evil_task, attempt.trajectory) is None


def test_prune_removes_one_exemplar() -> None:
    exemplars = [{"task_id": f"t{i}", "input": f"# {i}\n", "output": "pass\n"} for i in range(3)]
    child = with_exemplars(completion_seed(), exemplars)
    assert child is not None
    pruned = make_operator("prune_exemplar").propose(child, None, random.Random(1))  # type: ignore[arg-type]
    assert pruned is not None and len(exemplars_of(pruned.variant)) == 2
    assert (
        make_operator("prune_exemplar").propose(completion_seed(), None, random.Random(1)) is None
    )  # type: ignore[arg-type]


# --- feedback redaction -----------------------------------------------------------------


def test_feedback_lines_quoting_hidden_tests_are_removed() -> None:
    hidden = {"tests": {"t.py": "from f import x\nassert x == 42, 'secret-marker'\n"}}
    feedback = (
        "Traceback:\n  File t.py, line 2\n    assert x == 42, 'secret-marker'\nAssertionError: 7"
    )
    out = redact_feedback(feedback, hidden)
    assert "secret-marker" not in out and "Error: 7" in out and "removed" in out
    assert redact_feedback("all good", hidden) == "all good"


# --- operator choice ---------------------------------------------------------------------


def test_fixed_weights_and_the_bandit() -> None:
    weights = parse_weights("graph_options=3,merge")
    assert weights == {"graph_options": 3.0, "merge": 1.0}
    rng = random.Random(0)
    picks = [FixedWeights(weights).pick([], rng) for _ in range(4000)]
    assert 0.70 < picks.count("graph_options") / 4000 < 0.80
    bandit = GainBandit(["a", "b", "c"], exploration=0.1)
    assert bandit.pick([], random.Random(0)) == "a"  # untried first, in order
    history = [Use("a", 0.0, 1), Use("b", 0.5, 1), Use("c", 0.5, 10)]  # c gains the same, 10x cost
    assert bandit.pick(history, random.Random(0)) == "b"
    with pytest.raises(ConfigError, match="bad weight"):
        parse_weights("merge=lots")


# --- novelty (the real MiniLM embedder) ----------------------------------------------------


def test_near_duplicate_prompts_are_caught_and_real_rewrites_pass() -> None:
    seed = Variant.from_spec(load_spec("tool_coder"))
    text = seed.prompt("system")
    novelty = NoveltyFilter("minilm", threshold=0.985)
    assert novelty.check(seed, [seed]) == ("duplicate", seed.id)
    same_agent = seed.with_prompt("system", text.replace("careful", "Careful", 1) + " ")
    assert novelty.check(same_agent, [seed]) == ("near-duplicate", seed.id)
    rewrite = seed.with_prompt(
        "system", "Solve the task in as few steps as possible; never run the tests twice."
    )
    assert novelty.check(rewrite, [seed]) is None
    options = seed.with_options(temperature=0.2)  # option changes are never "near"
    assert novelty.check(options, [seed.with_options(temperature=0.4)]) is None


# --- stages and statistics ------------------------------------------------------------------


def test_stage_plan() -> None:
    plan = StagePlan.parse("1,10,50,all", "parent,0.2")
    assert plan.tasks([str(i) for i in range(80)], 2) == [str(i) for i in range(50)]
    assert plan.tasks(["a", "b"], 3) == ["a", "b"]
    assert plan.passes(1, 0.5, 0.5) and not plan.passes(1, 0.4, 0.5)
    assert plan.passes(2, 0.2, 0.9) and not plan.passes(2, 0.1, 0.0)
    assert plan.passes(3, 0.0, 1.0)  # the last stage has no gate
    assert StagePlan.parse("1,all", "parent+0.1").thresholds == ()
    for bad in ("all,10", "1", "0,5", "1,x"):
        with pytest.raises(ConfigError):
            StagePlan.parse(bad, "parent")


def test_paired_bootstrap() -> None:
    a = {f"t{i}": 0.0 for i in range(30)}
    b = {f"t{i}": 1.0 if i < 15 else 0.0 for i in range(30)}
    result = paired_bootstrap(a, b, seed=1)
    assert result["diff"] == 0.5 and result["verdict"] == "better" and result["ci95"][0] > 0.2
    same = paired_bootstrap(a, a)
    assert same["ci95"] == [0.0, 0.0] and same["verdict"] == "no significant difference"
    noisy = {f"t{i}": 1.0 if i in (0, 1) else 0.0 for i in range(30)}
    flipped = {f"t{i}": 1.0 if i in (1, 2) else 0.0 for i in range(30)}
    assert paired_bootstrap(noisy, flipped)["verdict"] == "no significant difference"
    with pytest.raises(ValueError, match="no task"):
        paired_bootstrap({"x": 1.0}, {"y": 1.0})
