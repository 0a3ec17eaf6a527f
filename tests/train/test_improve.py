"""The improve loop end to end on the engine (real sandbox and scorer, training on the tiny
checkpoint, the registry), with scripted models standing in for the served policies: the loop
logic — rounds, held-out gate and report, promotion and refusal, state, resume — is what is
tested here; serving a trained adapter for real is tests/train/test_serving.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exapt.agents.models import ScriptedModel
from exapt.errors import ConfigError
from exapt.evolve.improve import Improve, ImproveConfig, make_improve_config
from exapt.evolve.policies import PolicyRegistry
from exapt.evolve.training.train import TrainConfig
from exapt.memory.trajectories import TrajectoryStore
from exapt.tasks.splits import split_of

from .helpers import write_function_suite

IDS = tuple(range(14))  # train: 0 3 4 5 6 7 8 10 12 13; dev: 2 9; test: 1 11


def _script(solved: set[int]) -> dict[str, str]:
    return {f"def f{i}(": f"    return x + {i}\n" if i in solved else "    return 0\n" for i in IDS}


BASE = {0, 3, 2, 1}  # two train tasks, one dev, one test
BETTER = set(IDS)  # solves every task
WORSE: set[int] = set()


class Models:
    """Resolves the base and the policies to scripted models; counts the calls."""

    def __init__(self, behaviour: dict[str, set[int]], interrupt: str | None = None) -> None:
        self.behaviour = behaviour
        self.interrupt = interrupt
        self.resolved: list[str] = []

    def __call__(self, name: str) -> Any:
        self.resolved.append(name)
        if name == self.interrupt:
            self.interrupt = None
            raise KeyboardInterrupt
        key = name.rsplit("-", 1)[-1] if name.startswith("policy:") else "base"
        return ScriptedModel(
            _script(self.behaviour[key]), supports_tools=False, is_base=True, name=name
        )


def _config(tmp_path: Path, tiny: Path, **changes: Any) -> ImproveConfig:
    suite = write_function_suite(tmp_path / "toy.jsonl", IDS)
    values: dict[str, Any] = {
        "suite": suite, "model": f"local:{tiny}", "rounds": 2, "samples": 2, "workers": 2,
        "line": "toy", "training": TrainConfig(max_steps=2, batch_size=2, save_steps=1),
        **changes,
    }  # fmt: skip
    return ImproveConfig(**values)


def test_rounds_train_gate_promote_and_report(
    home: Path, tmp_path: Path, tiny: Path, backend: str
) -> None:
    assert {split_of(f"toy/f{i}") for i in (2, 9)} == {"dev"}
    models = Models({"base": BASE, "r1": BETTER, "r2": WORSE})
    loop = Improve.prepare(_config(tmp_path, tiny, sandbox=backend), resolve=models)
    state = loop.run()
    assert state["status"] == "done"
    base, (r1, r2) = state["base"], state["rounds"]
    assert base["gate"]["pass_rate"] == 0.5 and base["report"]["pass_rate"] == 0.5
    # Round 1 collected with the base: two of ten train tasks, in each of two samples.
    assert r1["parent"] is None and r1["collect"]["attempts"] == 20
    assert r1["collect"]["passed"] == 4 and r1["collect"]["tasks_solved"] == 2
    assert r1["dataset"]["rows"] == 2 and r1["dataset"]["tasks"] == 2  # deduped samples
    assert r1["train"]["steps"] == 2 and r1["policy"] == "toy-r1"
    assert r1["gate"]["pass_rate"] == 1.0 and r1["report"]["pass_rate"] == 1.0
    assert r1["promote"]["promoted"] is True
    assert r1["promote"]["report_paired"]["diff"] == 0.5
    # Round 2 collected with toy-r1 (all ten solved), trained on both rounds' data; worse on dev.
    assert r2["parent"] == "toy-r1" and r2["collect"]["passed"] == 20
    assert r2["dataset"]["rows"] == 10
    assert r2["promote"]["promoted"] is False and "0.000 vs 1.000" in r2["promote"]["reason"]
    registry = PolicyRegistry()
    assert [(p.name, p.status, p.parent) for p in registry.list("toy")] == [
        ("toy-r1", "promoted", None),
        ("toy-r2", "candidate", "toy-r1"),
    ]
    r1_policy = registry.get("toy-r1")
    assert (
        r1_policy.metrics_before["pass_rate"] == 0.5 and r1_policy.metrics_after["pass_rate"] == 1.0
    )
    assert r1_policy.dataset_hash == r1["dataset"]["hash"]
    saved = json.loads((home / "runs" / loop.run_id / "improve.json").read_text())
    assert saved["rounds"][1]["promote"] == r2["promote"]
    # Every evaluation went through the engine into the store, test split only in reports.
    with TrajectoryStore() as store:
        runs = {r.run_id: r for r in store.list_runs() if r.run_id.startswith(loop.run_id)}
        for run_id, record in runs.items():
            splits = {split_of(t.task_id) for t in store.trajectories(run_id, with_steps=False)}
            expected = "test" if "report" in run_id else "dev" if "gate" in run_id else "train"
            assert splits == {expected}, run_id
            assert record.config["improve"] == loop.run_id
    assert len(runs) == 2 + 2 * (2 + 2)  # base gate/report + per round 2 collect, gate, report


def test_an_interrupted_loop_resumes_where_it_stopped(
    home: Path, tmp_path: Path, tiny: Path, backend: str
) -> None:
    config = _config(tmp_path, tiny, rounds=1, sandbox=backend)
    first = Models({"base": BASE, "r1": BETTER}, interrupt="policy:toy-r1")
    loop = Improve.prepare(config, resolve=first)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    saved = json.loads((home / "runs" / loop.run_id / "improve.json").read_text())
    assert saved["status"] == "interrupted"
    assert saved["rounds"][0]["done"] == ["collect", "dataset", "train", "register"]
    with TrajectoryStore() as store:
        collected = len(store.trajectories(f"{loop.run_id}-r1-c0", with_steps=False))
    again = Models({"base": BASE, "r1": BETTER})
    state = Improve.resume(loop.run_id, resolve=again).run()
    assert state["status"] == "done" and state["rounds"][0]["promote"]["promoted"]
    assert again.resolved == ["policy:toy-r1", "policy:toy-r1"]  # gate, report: nothing redone
    with TrajectoryStore() as store:
        assert len(store.trajectories(f"{loop.run_id}-r1-c0", with_steps=False)) == collected


def test_a_round_without_training_data_is_skipped_and_said(
    home: Path, tmp_path: Path, tiny: Path, backend: str
) -> None:
    models = Models({"base": {2, 1}})  # solves nothing of the train split
    state = Improve.prepare(
        _config(tmp_path, tiny, rounds=1, sandbox=backend), resolve=models
    ).run()
    (r1,) = state["rounds"]
    assert state["status"] == "done" and "no trusted passes" in r1["skipped"]
    assert "policy" not in r1 and PolicyRegistry().list() == []


def test_bad_improve_options_are_refused(tmp_path: Path, tiny: Path, home: Path) -> None:
    with pytest.raises(ConfigError, match="gate split 'train' is the train split"):
        make_improve_config(suite="humaneval", gate_split="train")
    with pytest.raises(ConfigError, match="report split 'dev' is also trained or gated"):
        make_improve_config(suite="humaneval", report_split="dev")
    with pytest.raises(ConfigError, match="trains LoRA adapters over a local base"):
        Improve.prepare(_config(tmp_path, tiny, model="openai/gpt-4o-mini"))
    with pytest.raises(ConfigError, match="not a transformers checkpoint"):
        Improve.prepare(_config(tmp_path, tiny, model=f"local:{tmp_path}"))
    with pytest.raises(ConfigError, match="no improve run 'nope'"):
        Improve.resume("nope")
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
