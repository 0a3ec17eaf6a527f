"""The generation loop end to end: scripted models proposing known edits, tiny JSONL tasks
scored in the real bubblewrap sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exapt.evolve import jobs
from exapt.evolve.archive import Archive
from exapt.evolve.base import Proposal
from exapt.evolve.variant import Variant

from .helpers import SUBMIT, create, splits


def test_three_generations_add_children_with_correct_lineage(
    evolve_run: Callable[..., Any], files: dict[str, Path]
) -> None:
    summary, _ = evolve_run(generations=3, children=2)
    assert summary["status"] == "done"
    with Archive.open("t") as archive:
        entries = archive.entries()
        seed = archive.meta("seed_id")
        by_id = {e.variant_id: e for e in entries}
        assert by_id[seed].generation == 0 and by_id[seed].parent_ids == []
        attempts = archive.attempts()
        assert sorted((a.generation, a.slot) for a in attempts) == [
            (g, s) for g in (1, 2, 3) for s in (0, 1)
        ]
        for e in entries:
            if e.variant_id == seed:
                continue
            parent = by_id[e.parent_id]
            # a parent comes from an earlier generation, was accepted, and made this child
            assert parent.generation < e.generation and parent.status == "accepted"
            attempt = next(a for a in attempts if a.variant_id == e.variant_id)
            assert (attempt.generation, attempt.slot, attempt.parent_id) == (
                e.generation, e.slot, e.parent_id)  # fmt: skip
            assert archive.lineage(e.variant_id)[-1] == seed
            # the folder holds exactly the child; its diff against its parent is the change
            assert Variant.from_dir(archive.variant_dir(e.variant_id)).id == e.variant_id
        careful = [
            e for e in entries if "CAREFUL" in archive.variant(e.variant_id).prompt("instance")
        ]
        assert careful, "reflect_prompt never rewrote the instance prompt"
        first = min(careful, key=lambda e: e.generation)
        assert first.operator == "reflect_prompt" and first.score == 1.0
        assert by_id[first.parent_id].score == 0.0
        best = archive.best()
        assert best is not None and best.score == 1.0
        final = archive.meta("final")
        assert final["comparison"]["verdict"] == "better"
        assert final["comparison"]["mean_b"] == 1.0 and final["comparison"]["mean_a"] == 0.0
        # test tasks were scored for the best and the seed only, and never for selection
        test_ids = set(splits()["test"])
        for e in entries:
            selected = set(archive.scores(e.variant_id, "select"))
            assert not selected & test_ids
            has_test = bool(archive.scores(e.variant_id, "test"))
            assert has_test == (e.variant_id in {best.variant_id, seed})


def test_the_mutator_sees_visible_feedback_never_hidden_tests(
    evolve_run: Callable[..., Any], files: dict[str, Path]
) -> None:
    evolve_run(generations=1, children=2, operators={"reflect_prompt": 1.0})
    mutator = jobs.resolve(f"scripted:{files['mutator']}", None)
    prompts = [call["messages"][-1]["content"] for call in mutator.calls]
    assert prompts, "the mutator was never called"
    train = set(splits()["train"])
    for prompt in prompts:
        named = {line.split(": ", 1)[1] for line in prompt.splitlines()
                 if line.startswith("## Failure")}  # fmt: skip
        assert named and named <= train  # feedback comes from the train split only
        # The hidden test is `assert x == I, x`; a traceback would quote it: redacted.
        assert "assert x ==" not in prompt
        assert "from f" not in prompt or "import x" not in prompt
        # What the mutator does get: the judge's visible verdict for each failure.
        feedback = prompt.split("Test feedback:\n", 1)[1].split("\n", 1)[0]
        assert feedback.strip() and feedback != "(none)", prompt


def worse_agent(path: Path) -> Path:
    """Right on every task without CAREFUL, wrong with it (so the rewrite is worse)."""
    replies: dict[str, Any] = {f"CAREFUL: TASK {i}:": create(i, -1) for i in range(24)}
    train = {int(t.split("t")[-1]) for t in splits()["train"]}
    replies.update({f"TASK {i}:": create(i, -1 if i in train else i) for i in range(24)})
    replies["wrote "] = SUBMIT
    path.write_text(json.dumps(replies))
    return path


def test_a_worse_child_stops_at_the_first_gate(
    evolve_run: Callable[..., Any], tmp_path: Path
) -> None:
    agent = worse_agent(tmp_path / "worse.json")
    evolve_run(model=f"scripted:{agent}", generations=2, children=2,
               operators={"reflect_prompt": 1.0})  # fmt: skip
    with Archive.open("t") as archive:
        entries = archive.entries()
        rejected = [e for e in entries if e.status == "rejected"]
        assert rejected, [(e.operator, e.status, e.score) for e in entries]
        for e in rejected:
            assert e.stage == 1 and e.n_scored == 2  # smoke + stage 1 (2 tasks), not all 3
            assert e.reason.startswith("stage 1: mean 0.000 < 1.000")
            assert not any(x.parent_id == e.variant_id for x in entries)  # never a parent


class Fixed:
    """A test operator that proposes one given change (any ``Proposal``)."""

    def __init__(self, name: str, make: Callable[[Variant], Variant]) -> None:
        self.name, self.make = name, make

    def propose(self, parent: Variant, ctx: Any, rng: Any) -> Proposal | None:
        return Proposal(variant=self.make(parent), operator=self.name, description=self.name)


def run_with(evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
             operator: Fixed, **config: Any) -> None:  # fmt: skip
    import exapt.evolve.prepare as prepare_module

    real = prepare_module.make_operator
    monkeypatch.setattr(
        prepare_module, "make_operator",
        lambda name, **kw: operator if name == operator.name else real(name, **kw),
    )  # fmt: skip
    evolve_run(operators={operator.name: 1.0}, **config)


def test_children_that_crash_or_do_not_load_are_failed_and_never_selected(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(parent: Variant) -> Variant:  # different each time: a new child per slot
        n = len(parent.prompt("instance"))
        return parent.with_prompt("instance", "{{ undefined_name }}" + " " * (n % 7))

    run_with(evolve_run, monkeypatch, Fixed("crashes", broken), generations=2, children=2)
    with Archive.open("t") as archive:
        children = [e for e in archive.entries() if e.generation > 0]
        assert children and all(e.status == "failed" for e in children)
        assert all("undefined_name" in (e.reason or "") for e in children)
        assert all(e.parent_id == archive.meta("seed_id") for e in children)  # never parents
        assert all(e.n_scored == 1 for e in children)  # the smoke task only


def test_a_child_that_names_host_code_fails_to_load(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def host_code(parent: Variant) -> Variant:
        data = parent.spec_data()
        data["graph"] = "os:system"
        return parent.with_spec_data(data)

    run_with(evolve_run, monkeypatch, Fixed("hostile", host_code), generations=1, children=1)
    with Archive.open("t") as archive:
        (child,) = [e for e in archive.entries() if e.generation == 1]
        assert child.status == "failed" and child.reason.startswith("load:")
        assert "built-in graph" in child.reason and child.n_scored == 0


def test_a_duplicate_child_is_not_evaluated(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_with(evolve_run, monkeypatch, Fixed("same", lambda p: p), generations=2, children=2)
    with Archive.open("t") as archive:
        assert len(archive.entries()) == 1  # the seed only
        outcomes = {(a.outcome, a.variant_id) for a in archive.attempts()}
        assert outcomes == {("duplicate", archive.meta("seed_id"))}
        assert archive.spend()["evaluations"] == 3  # the seed's, on the 3 selection tasks
        assert archive.spend()["test_evaluations"] == 6  # the final test of the seed


def bump(parent: Variant) -> Variant:
    """One rung up a knob: the seed's neighbour is the same variant for every slot."""
    data = parent.spec_data()
    options = dict(data.get("graph_options") or {})
    options["keep_observations"] = int(options.get("keep_observations", 5)) + 1
    data["graph_options"] = options
    return parent.with_spec_data(data)


def test_a_free_duplicate_walks_on_to_a_novel_neighbour(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_with(evolve_run, monkeypatch, Fixed("bump", bump), generations=1, children=3)
    with Archive.open("t") as archive:
        seed = archive.meta("seed_id")
        children = sorted((e for e in archive.entries() if e.generation == 1), key=lambda e: e.slot)
        steps = [archive.variant(e.variant_id).spec_data()["graph_options"]["keep_observations"]
                 for e in children]  # fmt: skip
        assert steps == [6, 7, 8]  # slot 1 walked past slot 0's child, slot 2 past both
        assert all(e.parent_id == seed for e in children)
        assert [e.description for e in children] == [
            "bump",
            "bump | then bump",
            "bump | then bump | then bump",
        ]
        assert [e.metadata.get("walk") for e in children] == [None, 2, 3]
        assert {a.outcome for a in archive.attempts()} == {"child"}


@pytest.mark.parametrize("parents", ["accepted", "valid"])
def test_rejected_children_are_parents_only_with_parents_valid(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, parents: str
) -> None:
    # an absolute gate of 1.0: every child (the scripted agent fails these tasks) is rejected
    run_with(evolve_run, monkeypatch, Fixed("bump", bump), generations=2, children=2,
             thresholds="1.0", parents=parents)  # fmt: skip
    with Archive.open("t") as archive:
        seed = archive.meta("seed_id")
        first = {e.variant_id for e in archive.entries() if e.generation == 1}
        assert first and all(archive.entry(v).status == "rejected" for v in first)
        second = [e.parent_id for e in archive.entries() if e.generation == 2]
        assert len(second) == 2
        if parents == "accepted":
            assert set(second) == {seed}
        else:  # the seed has two children, each rejected child none: they weigh more
            assert set(second) & first


class PaidBump(Fixed):
    """``bump`` whose proposals cost a mutator call: a duplicate is not walked on."""

    calls = 0

    def propose(self, parent: Variant, ctx: Any, rng: Any) -> Proposal | None:
        PaidBump.calls += 1
        return Proposal(variant=bump(parent), operator=self.name, description=self.name,
                        cost_usd=0.01)  # fmt: skip


def test_a_paid_duplicate_is_not_walked_on(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_with(evolve_run, monkeypatch, PaidBump("paid", bump), generations=1, children=2)
    with Archive.open("t") as archive:
        outcomes = [a.outcome for a in sorted(archive.attempts(), key=lambda a: a.slot)]
        assert outcomes == ["child", "duplicate"] and PaidBump.calls == 2


def test_the_cache_is_shared_across_archives(evolve_run: Callable[..., Any], home: Path) -> None:
    first, _ = evolve_run(generations=2, children=2)
    second, _ = evolve_run(archive="t2", generations=2, children=2)
    assert first["spend"]["evaluations"] > 0
    assert second["spend"]["evaluations"] == 0  # every (variant, task) came from the cache
    both = first["spend"]["evaluations"] + first["spend"]["test_evaluations"]
    assert second["spend"]["cached"] == both and second["spend"]["test_evaluations"] == 0
    with Archive.open("t") as a, Archive.open("t2") as b:
        assert [e.variant_id for e in a.entries()] == [e.variant_id for e in b.entries()]


def test_a_spent_budget_never_cuts_an_attempt_or_the_held_out_scoring_short(
    evolve_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hours run out once the seed is scored: generation 1 starts nothing, and the final
    test still scores the seed on every test task with no limit from the spent budget (a cut
    attempt would be cached as the variant's verdict)."""
    from exapt.engine import Engine
    from exapt.evolve.loop import Evolution

    budgets: list[tuple[bool, Any]] = []
    real_evaluate, real_generation = Engine.evaluate, Evolution._generation

    def evaluate(self: Any, target: Any, tasks: Any, **kw: Any) -> Any:
        budgets.append((evolution_of[0].testing, kw.get("budget")))
        return real_evaluate(self, target, tasks, **kw)

    evolution_of: list[Any] = []

    def generation(self: Any, g: int) -> None:
        self._wall_before = 10 * 3600.0  # ten hours used: max_hours=1 is spent
        real_generation(self, g)

    real_init = Evolution.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        real_init(self, *args, **kw)
        evolution_of.append(self)

    monkeypatch.setattr(Engine, "evaluate", evaluate)
    monkeypatch.setattr(Evolution, "_generation", generation)
    monkeypatch.setattr(Evolution, "__init__", init)
    summary, _ = evolve_run(generations=2, children=2, max_hours=1.0)
    assert summary["status"] == "stopped" and "max_hours" in summary["stop_detail"]
    assert all(not b.cap_attempts for _t, b in budgets)  # evolve never caps an attempt
    testing = [b for t, b in budgets if t]
    assert testing and all(b.max_wall_s is None for b in testing)
    with Archive.open("t") as archive:
        seed = archive.meta("seed_id")
        children = [e for e in archive.entries() if e.variant_id != seed]
        assert all(not archive.scores(e.variant_id, "select") for e in children)  # none ran
        scored = archive.scores(seed, "test")
        assert len(scored) == len(splits()["test"])
        assert all(r.stop_reason != "max_wall" and not r.error for r in scored.values())


def lineage_of(name: str) -> list[tuple[Any, ...]]:
    with Archive.open(name) as archive:
        return [(e.variant_id, tuple(e.parent_ids), e.generation, e.slot, e.status, e.score)
                for e in archive.entries()]  # fmt: skip


@pytest.mark.parametrize("max_evals", [3, 5, 9])  # stops before, during a mutation, in a stage
def test_a_budget_stops_cleanly_and_resume_finishes(
    evolve_run: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch, max_evals: int
) -> None:
    from exapt.evolve.prepare import close, resume

    monkeypatch.setenv("EXAPT_HOME", str(home.parent / "reference"))
    evolve_run(archive="ref", generations=3, children=2, workers=1)
    reference = lineage_of("ref")
    monkeypatch.setenv("EXAPT_HOME", str(home))
    stopped, _ = evolve_run(generations=3, children=2, max_evals=max_evals, workers=1)
    assert stopped["status"] == "stopped" and f"max_evals={max_evals}" in stopped["stop_detail"]
    assert stopped["spend"]["evaluations"] == max_evals
    evolution = resume("t", {"max_evals": 1000})
    try:
        done = evolution.run()
    finally:
        close(evolution)
    assert done["status"] == "done" and done["generations_done"] == 3
    with Archive.open("t") as archive:
        assert all(e.status in ("accepted", "rejected", "failed") for e in archive.entries())
        log = [json.loads(x) for x in (archive.root / "jobs.log").read_text().splitlines()]
    finished = [(e["variant"], e["task"]) for e in log if e["event"] == "finish"]
    spend = done["spend"]
    assert len(finished) == len(set(finished)) == spend["evaluations"] + spend["test_evaluations"]
    assert lineage_of("t") == reference  # stopping and resuming changed nothing


def test_min_solved_stops_children_that_solved_nothing(evolve_run: Callable[..., Any]) -> None:
    evolve_run(generations=1, children=2, operators={"graph_options": 1.0}, min_solved=1)
    with Archive.open("t") as archive:
        children = [e for e in archive.entries() if e.generation == 1]
        assert children and all(e.status == "rejected" for e in children)
        assert [e.reason for e in children] == [
            "stage 1: solved 0 < --min-solved 1 on 2 tasks"
        ] * len(children)


def test_exemplars_come_from_trusted_train_passes_only(
    evolve_run: Callable[..., Any], tmp_path: Path
) -> None:
    from exapt.evolve.operators.exemplars import exemplars_of

    from .helpers import agent_script

    train = splits()["train"]
    right = tuple(int(t.split("t")[-1]) for t in train[:3])
    agent = agent_script(tmp_path / "right.json", right=(*right, 12))  # 12: a dev task
    evolve_run(model=f"scripted:{agent}", generations=2, children=2, harvest=len(train),
               operators={"add_exemplar": 1.0})  # fmt: skip
    with Archive.open("t") as archive:
        children = [e for e in archive.entries() if e.generation > 0]
        assert children
        for e in children:
            picked = {x["task_id"] for x in exemplars_of(archive.variant(e.variant_id))}
            assert picked and picked <= {f"demo/t{i}" for i in right}  # never demo/t12
            assert "```write f" in archive.variant(e.variant_id).prompt("exemplars")
