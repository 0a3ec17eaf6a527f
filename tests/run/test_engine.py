"""The engine's API, as evolve uses it: store first then learn, per-task scores, a cache
keyed by (variant, task, model, trial), failures that end an evaluation but keep its
attempts. Real JSONL tasks, real sandboxes and scorers, a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.agents import load_spec
from exapt.agents.models import ScriptedModel
from exapt.engine import (
    Engine,
    EvaluationFailed,
    LocalExecutor,
    StoreCache,
    Target,
    evaluate,
)
from exapt.engine.resolve import load_scripted_model
from exapt.errors import UnavailableError
from exapt.memory import Recollection
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Score, Task, Trajectory
from exapt.tasks import Suite, load_suite, suite_sandbox_factory

from .helpers import match_script, write_tasks


class ChromaDown:
    """A memory backend whose store went away after it was opened: recall finds nothing,
    every learn raises (as a Chroma client does when its server is gone)."""

    def __init__(self) -> None:
        self.learn_calls = 0

    def recall(self, task: Task, *, variant_id: str = "", model: str = "") -> Recollection:
        return Recollection()

    def learn(
        self, task: Task, trajectory: Trajectory, score: Score, workspace: dict[str, bytes]
    ) -> None:
        self.learn_calls += 1
        raise UnavailableError("no Chroma server answers at http://127.0.0.1:1")


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    return load_suite(f"jsonl:{write_tasks(tmp_path / 'tasks.jsonl', 3)}")


def test_a_memory_that_fails_to_learn_loses_no_attempt(
    tmp_path: Path, suite: Suite, backend: str
) -> None:
    """t2 is always answered wrong: 2 trials. Every attempt is stored, each with the learn
    error on it, the run ends done, the traceback is in the errors log."""
    model = load_scripted_model(match_script(tmp_path / "s.json", [0, 1, 2], wrong=(2,)))
    memory = ChromaDown()
    target = Target(
        model=model,
        suite=suite,
        sandbox=suite_sandbox_factory(suite, backend),
        spec=load_spec("tool_coder"),
        memory=memory,
    )
    log = tmp_path / "errors.log"
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        engine = Engine(store, LocalExecutor(2), errors_log=log)
        result = engine.evaluate(target, list(suite.tasks()), run_id="r1", trials=2)
        stored = {(t.task_id, t.trial): t for t in store.trajectories("r1")}
    assert result.status == "done" and result.error is None
    assert sorted(stored) == [("demo/t0", 0), ("demo/t1", 0), ("demo/t2", 0), ("demo/t2", 1)]
    assert memory.learn_calls == 4
    for trajectory in stored.values():
        assert "no Chroma server answers" in trajectory.metadata["learn_error"]
        assert trajectory.steps[-1].kind == "score"  # the whole attempt, not a stub
    assert [a.learn_error is not None for a in result.attempts] == [True] * 4
    assert result.states["demo/t2"].learn_errors == 2
    assert log.read_text().count("exapt.errors.UnavailableError: no Chroma") == 4
    assert {k: s.passed for k, s in result.scores().items()} == {
        "demo/t0": True,
        "demo/t1": True,
        "demo/t2": False,
    }


def test_evaluate_gives_scores_and_the_cache_reuses_attempts(
    tmp_path: Path, suite: Suite, backend: str
) -> None:
    spec = load_spec("tool_coder")
    tasks = list(suite.tasks())
    model = load_scripted_model(match_script(tmp_path / "s.json", [0, 1, 2], wrong=(1,)))
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        first = evaluate(spec, tasks, model, suite=suite, backend=backend, store=store, run_id="a")
        assert {a.task_id: a.score.passed for a in first} == {
            "demo/t0": True,
            "demo/t1": False,
            "demo/t2": True,
        }
        assert not any(a.cached for a in first)
        # Same variant, tasks, model name and trials: nothing runs (this model has no reply).
        silent = ScriptedModel({}, name=model.name)
        cache = StoreCache(store, exclude_run="b")
        again = evaluate(
            spec, tasks, silent, suite=suite, backend=backend, store=store, run_id="b",
            cache=cache,
        )  # fmt: skip
        assert silent.calls == [] and all(a.cached for a in again)
        assert {a.task_id: a.score for a in again} == {a.task_id: a.score for a in first}
        copies = store.trajectories("b")
        assert {t.metadata["cached_from"]["run_id"] for t in copies} == {"a"}
        assert all(t.steps == [] and t.tokens_in == 0 for t in copies)
        # Another variant is not the same attempt: it runs, and fails for want of replies.
        other = spec.with_changes(description="another variant")
        with pytest.raises(EvaluationFailed, match="ScriptExhausted"):
            evaluate(
                other, tasks[:1], silent, suite=suite, backend=backend, store=store,
                run_id="c", cache=cache,
            )  # fmt: skip


def test_a_failed_evaluation_keeps_its_attempts_and_resumes(
    tmp_path: Path, suite: Suite, backend: str
) -> None:
    spec = load_spec("tool_coder")
    tasks = list(suite.tasks())
    script = match_script(tmp_path / "s.json", [0])  # no reply for t1, t2
    with TrajectoryStore(tmp_path / "t.sqlite") as store:
        with pytest.raises(EvaluationFailed) as failed:
            evaluate(
                spec, tasks, load_scripted_model(script), suite=suite, backend=backend,
                store=store, run_id="r",
            )  # fmt: skip
        assert failed.value.evaluation.status == "failed"
        assert [t.task_id for t in store.trajectories("r")] == ["demo/t0"]
        # The same run id resumes: only the missing tasks run (t0 has no reply any more).
        match_script(script, [1, 2])
        resumed = evaluate(
            spec, tasks, load_scripted_model(script), suite=suite, backend=backend,
            store=store, run_id="r",
        )  # fmt: skip
        assert sorted(a.task_id for a in resumed) == ["demo/t1", "demo/t2"]
        assert len(store.trajectories("r")) == 3
