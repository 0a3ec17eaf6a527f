"""The evaluator: cached results are never run again (also after a crash between store and
cache), a hang or crash is the variant's result, an infrastructure failure stops it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from exapt.agents import load_spec
from exapt.evolve.base import Gate
from exapt.evolve.cache import EvalCache
from exapt.evolve.evaluator import EngineEvaluator, EvaluationFailed
from exapt.evolve.executors import LocalExecutor
from exapt.evolve.jobs import guarded_run_job
from exapt.evolve.variant import Variant
from exapt.memory.trajectories import TrajectoryStore
from exapt.tasks import load_suite


class Counting:
    """An attempt runner that counts the attempts it runs (and can make some misbehave)."""

    def __init__(self, inner: Any = guarded_run_job) -> None:
        self.inner = inner
        self.runs: list[tuple[str, str]] = []  # (run id, task id)
        self.lock = threading.Lock()

    def __call__(self, job: Any) -> Any:
        with self.lock:
            self.runs.append((job.run_id, job.task.id))
        return self.inner(job)


def make(
    files: dict[str, Path], home: Path, bwrap: str, runner: Any, timeout_s: float = 1800,
    **kw: Any,
) -> EngineEvaluator:  # fmt: skip
    return EngineEvaluator(
        f"jsonl:{files['tasks']}",
        model=f"scripted:{files['agent']}",
        executor=LocalExecutor(2, timeout_s, runner=runner),
        cache=EvalCache(home / "evalcache.sqlite"),
        store=TrajectoryStore(home / "trajectories.sqlite"),
        origin="archive-1",
        backend=bwrap,
        **kw,
    )


@pytest.fixture
def seed() -> Variant:
    return Variant.from_spec(load_spec("tool_coder"))


def tasks_of(files: dict[str, Path], n: int = 3) -> list[Any]:
    return list(load_suite(f"jsonl:{files['tasks']}").tasks())[:n]


def test_a_cached_pair_is_never_run_again(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant
) -> None:
    counting = Counting()
    evaluator = make(files, home, bwrap, counting)
    pairs = [(seed, t) for t in tasks_of(files)]
    first = {r.task_id: r for r in evaluator.evaluate(pairs)}
    assert len(counting.runs) == 3 and not any(r.cached for r in first.values())
    assert all(r.run_id and r.error is None for r in first.values())
    again = {r.task_id: r for r in evaluator.evaluate(pairs)}
    assert len(counting.runs) == 3  # nothing ran
    assert {t: r.reward for t, r in again.items()} == {t: r.reward for t, r in first.items()}
    # Another archive (origin) gets the same results as cache hits, paid by nobody new.
    other = make(files, home, bwrap, counting)
    other.origin = "archive-2"
    hits = list(other.evaluate(pairs))
    assert len(counting.runs) == 3 and all(r.cached for r in hits)
    # A different model, seed or variant is a different key: it runs.
    child = seed.with_options(temperature=0.2)
    list(evaluator.evaluate([(child, pairs[0][1])]))
    assert counting.runs[-1] == (evaluator.run_id(child), pairs[0][1].id)


def test_an_edited_task_is_a_new_key(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant
) -> None:
    counting = Counting()
    evaluator = make(files, home, bwrap, counting)
    task = tasks_of(files, 1)[0]
    list(evaluator.evaluate([(seed, task)]))
    lines = files["tasks"].read_text().splitlines()
    first = json.loads(lines[0])
    first["timeout_s"] = 5.0  # the same task id, another task
    files["tasks"].write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    from exapt.evolve import jobs

    jobs.suite.cache_clear()
    again = make(files, home, bwrap, counting)
    (result,) = again.evaluate([(seed, tasks_of(files, 1)[0])])
    assert len(counting.runs) == 2 and result.error is None and not result.cached
    assert again.run_id(seed) != evaluator.run_id(seed)


def test_a_result_stored_but_not_cached_is_recovered_not_rerun(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant
) -> None:
    counting = Counting()
    evaluator = make(files, home, bwrap, counting)
    pairs = [(seed, t) for t in tasks_of(files, 2)]
    first = {r.task_id: r.reward for r in evaluator.evaluate(pairs)}
    evaluator.cache.close()
    with sqlite3.connect(home / "evalcache.sqlite") as conn:  # the crash hit between the writes
        conn.execute("DELETE FROM results")
    evaluator.cache = EvalCache(home / "evalcache.sqlite")
    recovered = {r.task_id: r.reward for r in evaluator.evaluate(pairs)}
    assert recovered == first and len(counting.runs) == 2
    assert evaluator.cache.count() == 2  # and cached again


def test_a_hang_and_a_crash_are_the_variants_results(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant
) -> None:
    hanging = seed.with_options(temperature=0.9)
    release = threading.Event()

    def misbehave(job: Any) -> Any:
        if job.run_id == evaluator.run_id(hanging):
            release.wait(30)  # an attempt that does not come back
        return guarded_run_job(job)

    evaluator = make(files, home, bwrap, Counting(misbehave), timeout_s=1.0)
    broken = seed.with_prompt("instance", "{{ no_such_variable }}")  # renders -> crash
    task = tasks_of(files, 1)[0]
    started = time.monotonic()
    results = {
        r.variant_id: r for r in evaluator.evaluate([(hanging, task), (broken, task), (seed, task)])
    }
    release.set()
    assert time.monotonic() - started < 20
    assert results[hanging.id].error.startswith("hang:")
    assert (
        results[broken.id].error.startswith("crash:")
        and "no_such_variable" in results[broken.id].error
    )
    assert results[seed.id].error is None
    assert evaluator.cache.count() == 1  # errors are not cached: a retry may differ


def test_an_infrastructure_failure_stops_after_keeping_the_finished(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant, tmp_path: Path
) -> None:
    tasks = tasks_of(files, 3)
    script = json.loads(files["agent"].read_text())
    del script["TASK 2:"]  # the model has no answer for task 2: a ModelError
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(script))
    evaluator = make({**files, "agent": partial}, home, bwrap, Counting())
    got = []
    with pytest.raises(EvaluationFailed, match="ScriptExhausted"):
        for result in evaluator.evaluate([(seed, t) for t in tasks]):
            got.append(result.task_id)
    assert "demo/t2" not in got and got  # the finished ones were yielded (and cached)
    assert evaluator.cache.count() == len(got)


def test_a_closed_gate_starts_nothing(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant
) -> None:
    class Closed(Gate):
        def open(self) -> bool:
            return False

    counting = Counting()
    evaluator = make(files, home, bwrap, counting)
    assert list(evaluator.evaluate([(seed, t) for t in tasks_of(files)], gate=Closed())) == []
    assert counting.runs == []


def test_the_jobs_log_records_every_finished_attempt(
    files: dict[str, Path], home: Path, bwrap: str, seed: Variant, tmp_path: Path
) -> None:
    log = tmp_path / "jobs.log"
    evaluator = make(files, home, bwrap, Counting(), log=log)
    list(evaluator.evaluate([(seed, t) for t in tasks_of(files, 2)]))
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted((e["event"], e["task"]) for e in events) == [
        ("finish", "demo/t0"), ("finish", "demo/t1")]  # fmt: skip
    assert {e["variant"] for e in events} == {seed.id}
