"""``self_modify`` end to end, with scripted models: a diagnosis, a coder that edits the
parent's ``agent.py`` in a sandbox, a child that builds in the sandbox and scores
differently, its diff and improver in the archive; and improvers judged by their children."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from selfmod_helpers import seed_folder, write_tasks

from exapt.agents.models import ModelReply, ScriptedModel
from exapt.agents.spec import load_spec
from exapt.errors import ConfigError
from exapt.evolve.archive import Archive
from exapt.evolve.base import TaskResult
from exapt.evolve.entries import ArchiveEntry
from exapt.evolve.mutators import MutatorArchive, default_mutator
from exapt.evolve.variant import Variant


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"text": "", "tool_calls": [{"id": f"m-{name}", "name": name, "arguments": arguments}]}


def mutator_script(path: Path, new: str = "OFFSET = 0") -> Path:
    replies = {
        "Diagnose why the agent failed": "Its values are off by one.\n"
        "IMPROVEMENT: in agent.py set OFFSET to 0 so the value written is the one asked for.",
        "IMPLEMENT an improvement": call("str_replace", path="agent.py",
                                         old_str="OFFSET = 1", new_str=new),
        "replaced 1 occurrence": call("submit"),
    }  # fmt: skip
    path.write_text(json.dumps(replies))
    return path


def evolve(tmp_path: Path, new: str = "OFFSET = 0", **overrides: Any) -> tuple[dict[str, Any], Any]:
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import close, prepare

    (tmp_path / "agent.json").write_text("{}")  # the seed's agent never calls its model
    values: dict[str, Any] = {
        "suite": f"jsonl:{write_tasks(tmp_path / 'tasks.jsonl')}",
        "archive": "sm",
        "model": f"scripted:{tmp_path / 'agent.json'}",
        "mutator_model": f"scripted:{mutator_script(tmp_path / 'mutator.json', new)}",
        "seed_agent": str(seed_folder(tmp_path / "seed")),
        "operators": {"self_modify": 1.0},
        "generations": 1,
        "children": 1,
        "stages": "1,all",
        "feedback_tasks": 2,
        "sandbox": "bwrap",
        "final_test": False,
        **overrides,
    }
    config = make_config(**values).model_copy(update={"embedder": None})
    evolution = prepare(config)
    try:
        return evolution.run(), evolution
    finally:
        close(evolution)


def test_self_modify_makes_a_child_that_scores_differently(tmp_path: Path, bwrap: str) -> None:
    summary, evolution = evolve(tmp_path, mutator_archive="improvers")
    archive = Archive.open("sm")
    entries = {e.operator: e for e in archive.entries()}
    seed, child = entries["seed"], entries["self_modify"]
    assert (seed.status, seed.score) == ("accepted", 0.0)
    assert (child.status, child.score, child.parent_id) == ("accepted", 1.0, seed.variant_id)
    variant = archive.variant(child.variant_id)
    assert "OFFSET = 0" in variant.text("agent.py") and not any(
        p.startswith(".reference/") for p in variant.files
    )
    diff = child.metadata["diff"]
    assert (
        "-OFFSET = 1" in diff
        and "+OFFSET = 0" in diff
        and diff == variant.diff(archive.variant(seed.variant_id))
    )
    assert child.metadata["improvement"].startswith("in agent.py set OFFSET to 0")
    assert child.description.startswith("self-modify: in agent.py set OFFSET")
    # the improver that made it is the default one, kept in its own archive
    improvers = Archive.open("improvers")
    assert [e.variant_id for e in improvers.entries()] == [child.metadata["mutator"]]
    assert child.metadata["mutator"] == default_mutator(True).id
    # the coder's run is in the trajectory store, as any attempt
    from exapt.memory.trajectories import TrajectoryStore

    store = TrajectoryStore()
    coder = store.trajectories(child.metadata["coder_run"])
    assert len(coder) == 1 and coder[0].result.passed
    assert [s.kind for s in coder[0].steps] == ["model", "tool", "model", "tool", "score"]
    store.close()
    # the diagnosis saw the parent's source and the visible feedback, never the hidden tests
    mutator = evolution.ctx.mutator()
    asked = [c for c in mutator.calls if "Diagnose why" in json.dumps(c)]
    assert len(asked) == 1
    text = json.dumps(asked[0])
    assert "OFFSET = 1" in text and "TASK " in text
    assert "HIDDEN-CHECK" not in text and "test_f.py" not in text
    # the gain is recorded on the improver once the child was judged
    op = evolution.operators["self_modify"]
    op.mutators.archive(True)
    op.mutators.sync(archive)
    assert [g.gain for g in op.mutators.gains(child.metadata["mutator"])] == [1.0]
    op.close()
    improvers.close()
    archive.close()
    assert summary["status"] == "done"


def test_a_child_whose_code_does_not_build_is_not_proposed(tmp_path: Path, bwrap: str) -> None:
    # the coder breaks agent.py: its build fails in the sandbox, the slot proposes nothing
    evolve(tmp_path, new="OFFSET = undefined_name")
    archive = Archive.open("sm")
    attempts = archive.attempts(1)
    assert [e.operator for e in archive.entries()] == ["seed"]
    assert attempts[0].outcome == "no-proposal"
    assert "does not build" in (attempts[0].reason or "") and "NameError" in attempts[0].reason
    archive.close()


def test_mutator_archive_option_needs_self_modify(tmp_path: Path) -> None:
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import prepare

    config = make_config(suite=f"jsonl:{write_tasks(tmp_path / 't.jsonl')}", archive="a",
                         operators={"graph_options": 1.0}, mutator_archive="m")  # fmt: skip
    with pytest.raises(ConfigError, match="self_modify"):
        prepare(config)
    same = make_config(suite=f"jsonl:{tmp_path / 't.jsonl'}", archive="a",
                       operators={"self_modify": 1.0}, mutator_archive="a")  # fmt: skip
    with pytest.raises(ConfigError, match="another archive"):
        prepare(same)


def judged_child(
    main: Archive, parent: Variant, mutator: str, reward: float, n: int
) -> ArchiveEntry:
    child = parent.with_options(temperature=n / 10 + 0.01)
    entry = ArchiveEntry(variant_id=child.id, parent_ids=[parent.id], generation=1, slot=n,
                         operator="self_modify", status="accepted",
                         metadata={"mutator": mutator, "improvement": f"change {n}"})  # fmt: skip
    main.add(entry, child)
    for t in ("a", "b"):
        main.record_score(TaskResult(variant_id=child.id, task_id=t, reward=reward),
                          split="select", fresh=True)  # fmt: skip
    return main.update(child.id)


def test_improvers_are_judged_by_their_children_and_improve(home: Path) -> None:
    main = Archive.create("main", {})
    seed = Variant.from_spec(load_spec("completion"))
    main.add(ArchiveEntry(variant_id=seed.id, status="accepted"), seed)
    for t in ("a", "b"):
        main.record_score(TaskResult(variant_id=seed.id, task_id=t, reward=0.5),
                          split="select", fresh=True)  # fmt: skip
    mutators = MutatorArchive("improvers", improve_after=2)
    first = mutators.choose(supports_tools=True)
    judged_child(main, seed, first.id, 1.0, 0)
    judged_child(main, seed, first.id, 0.25, 1)
    pending = judged_child(main, seed, first.id, 0.0, 2)
    main.update(pending.variant_id, status="evaluating")  # not judged yet: not counted
    mutators.sync(main)
    mutators.sync(main)  # idempotent
    assert sorted(g.gain for g in mutators.gains(first.id)) == [-0.25, 0.5]
    entry = mutators.archive(True).entry(first.id)  # type: ignore[union-attr]
    assert (entry.n_scored, entry.score) == (2, 0.125)
    # the improver rewrites one of its own prompts from what its children gained
    new_prompt = "Diagnose the failure of the agent below.\n{{ instruction }}\nIMPROVEMENT:"
    model = ScriptedModel([f"Shorter.\n```\n{new_prompt}\n```"])
    new, _, _ = mutators.improve(model, random.Random(1))
    assert new is not None and new.id != first.id
    request = model.calls[0]["messages"][0]["content"]
    assert "+0.500" in request and "-0.250" in request and "change 0" in request
    changed = [n for n in new.prompt_names() if new.prompt(n) != first.prompt(n)]
    assert len(changed) == 1 and new.prompt(changed[0]) == new_prompt
    assert mutators.choose(True).id == new.id  # untried: used next
    assert mutators.improve(ScriptedModel([]), random.Random(1))[0] is None  # has a child now
    mutators.close()
    # a rewritten prompt that would run code in the exapt process is no improver
    other = MutatorArchive("improvers2", improve_after=2)
    seed_improver = other.choose(True)
    for n in (5, 6):
        judged_child(main, seed, seed_improver.id, 1.0, n)
    other.sync(main)
    bad = ScriptedModel(["```\n{{ ''.__class__.__mro__ }}\n```"])
    assert other.improve(bad, random.Random(0))[0] is None and len(bad.calls) == 1
    assert len(other.archive(True).entries()) == 1  # type: ignore[union-attr]
    other.close()
    main.close()


def test_improver_archive_is_not_a_variant_archive(home: Path) -> None:
    Archive.create("plain", {}).close()
    with pytest.raises(ConfigError, match="not an archive of improvers"):
        MutatorArchive("plain").choose(True)


def test_the_diagnosis_prompt_carries_no_hidden_data() -> None:
    from exapt.evolve.operators.self_modify import SelfModifyOperator
    from exapt.records import Outcome, Step, Task, Trajectory

    task = Task(id="t", suite="s", instruction="do it", hidden={"tests": "assert SECRET_X == 1"})
    feedback = "1 test failed\nassert SECRET_X == 1\nAssertionError"
    t = Trajectory(run_id="r", task_id="t", result=Outcome(feedback=feedback),
                   steps=[Step(kind="model", output={"content": "I tried"}),
                          Step(kind="tool", output="exit code: 1")])  # fmt: skip
    parent = Variant(default_mutator(True).files)
    text = SelfModifyOperator().diagnosis(parent.load_spec().prompts, parent, task, t)
    assert "SECRET_X" not in text and "1 test failed" in text and "[model] I tried" in text
    assert "<<<FILE spec.yaml" in text and "do it" in text


def test_reply_without_an_improvement_is_skipped(tmp_path: Path) -> None:
    from exapt.evolve.operators.self_modify import SelfModifyOperator
    from exapt.records import Outcome, Task, Trajectory

    class Ctx:
        def failed_trajectories(self, v: Any, n: int) -> list[Trajectory]:
            return [Trajectory(run_id="r", task_id="t", result=Outcome(feedback="no"))]

        def task(self, task_id: str) -> Task:
            return Task(id="t", suite="s", instruction="x")

        def mutator(self) -> Any:
            return ScriptedModel([ModelReply(text="   ")])

    op = SelfModifyOperator()
    parent = Variant.from_spec(load_spec("completion"))
    assert op.propose(parent, Ctx(), random.Random(0)) is None  # type: ignore[arg-type]
    assert op.last_skip == "the diagnosis wrote no improvement task"
