"""Weights in the archive: ``exapt evolve --finetune-every N`` trains a policy on the
archive's own trusted passes (feedback split only) and adds a child whose model is that
policy, evaluated (staged, cached) like any other. The base and the policy are scripted
stand-ins here (serving a trained adapter for real is test_serving.py's); the training, the
registry, the archive and the evaluation of the child by its own model are real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exapt.agents.models import ScriptedModel
from exapt.evolve.policies import PolicyRegistry
from exapt.tasks.splits import split_of

from .helpers import write_function_suite

IDS = tuple(range(14))  # train: 0 3 4 5 6 7 8 10 12 13; dev: 2 9; test: 1 11


def _script(solved: set[int]) -> dict[str, str]:
    return {f"def f{i}(": f"    return x + {i}\n" if i in solved else "    return 0\n" for i in IDS}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run's model solves two train tasks and no dev task; any policy solves everything."""
    resolved: list[str] = []

    def resolve(name: str, api_base: str | None = None) -> Any:
        resolved.append(name)
        solved = set(IDS) if name.startswith("policy:") else {0, 3}
        return ScriptedModel(_script(solved), supports_tools=False, is_base=True, name=name)

    import exapt.evolve.evaluator as evaluator
    import exapt.evolve.prepare as prepare

    monkeypatch.setattr(evaluator, "resolve", resolve)
    monkeypatch.setattr(prepare, "resolve", resolve)
    return resolved


def test_a_policy_child_is_trained_on_the_archive_and_evaluated_by_its_model(
    home: Path, tmp_path: Path, tiny: Path, backend: str, scripted: list[str]
) -> None:
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import close, prepare

    suite = write_function_suite(tmp_path / "toy.jsonl", IDS)
    config = make_config(
        suite=suite, archive="ft", model=f"local:{tiny}", seed_agent="completion",
        operators={"graph_options": 1.0}, generations=2, children=1, finetune_every=2,
        harvest=10, stages="1,all", sandbox=backend, final_test=False,
    ).model_copy(update={"embedder": None})  # fmt: skip
    evolution = prepare(config)
    try:
        summary = evolution.run()
        entries = evolution.archive.entries()
        policy_children = [e for e in entries if e.operator == "finetune"]
        assert [e.generation for e in policy_children] == [2]  # every 2 generations
        child = policy_children[0]
        spec = evolution.archive.variant(child.variant_id).load_spec()
        assert spec.model == "policy:ft-g2"
        assert child.status == "accepted" and child.score == 1.0  # its own model scored it
        seed = next(e for e in entries if e.generation == 0)
        assert seed.score == 0.0  # the base solves no dev task
        assert "policy:ft-g2" in scripted
        assert summary["best"]["variant_id"] == child.variant_id
    finally:
        close(evolution)
    policy = PolicyRegistry().get("ft-g2")
    assert policy.line == "ft" and policy.parent is None and policy.method == "sft"
    # Trained on trusted passes of the feedback (train) split only.
    from exapt.evolve.training.datasets import load_saved

    rows = load_saved(policy.dataset_path).dataset.to_list()
    assert {r["task_id"] for r in rows} == {"toy/f0", "toy/f3"}
    assert {split_of(r["task_id"]) for r in rows} == {"train"}
