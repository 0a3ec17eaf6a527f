"""Limits that end an attempt, not the run: an oversized workspace, a scorer that cannot read
what the workspace left, a huge tool argument that must be stored once (real bwrap sandbox,
real trajectory store)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from agent_helpers import FIX_ADD, HiddenTestScorer, tool_reply

from exapt.agents import load_spec, run_task
from exapt.agents.models import ScriptedModel
from exapt.memory.trajectories import TrajectoryStore
from exapt.tasks.base import SandboxFactory, Score, Task


def test_an_oversized_workspace_ends_the_attempt_with_its_reason(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    fill = tool_reply("shell", command="head -c 60000000 /dev/zero > big.bin && echo filled")
    model = ScriptedModel([fill, tool_reply("submit")])
    attempt = run_task(
        add_task, spec=load_spec("tool_coder"), model=model, sandbox=sandbox_factory,
        scorer=scorer, run_id="r1",
    )  # fmt: skip
    result = attempt.trajectory.result
    assert result.stop_reason == "workspace_too_large"
    assert (result.reward, result.passed) == (0.0, False)
    assert "bytes limit" in (result.error or "")
    assert scorer.workspaces == []  # nothing half-read was scored
    assert attempt.trajectory.steps[-1].kind == "score"


class BrokenParser:
    """A scorer whose report parser chokes on what the solution printed."""

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        raise RecursionError("maximum recursion depth exceeded while parsing the report")


def test_a_scorer_that_cannot_parse_ends_the_attempt(
    add_task: Task, sandbox_factory: SandboxFactory
) -> None:
    attempt = run_task(
        add_task, spec=load_spec("tool_coder"), model=ScriptedModel(FIX_ADD),
        sandbox=sandbox_factory, scorer=BrokenParser(), run_id="r1",
    )  # fmt: skip
    assert attempt.trajectory.result.stop_reason == "score_failed"
    assert "RecursionError" in (attempt.score.error or "") and not attempt.score.passed
    assert attempt.trajectory.result.trusted is False


def _stored_bytes(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        steps = conn.execute("SELECT SUM(LENGTH(input) + LENGTH(output)) FROM steps").fetchone()
        blobs = conn.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM blobs").fetchone()
    finally:
        conn.close()
    return int(steps[0]) + int(blobs[0])


def test_a_2_mb_tool_argument_is_stored_once_not_once_per_step(
    tmp_path: Path, add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    """20 model calls after one 2 MB argument: the store grows linearly, and every call's
    full context reads back exactly as it was sent."""
    big = "x" * 2_000_000
    sizes = {}
    for n in (10, 20):
        replies = [tool_reply("create", path="big.txt", content=big)]
        replies += [tool_reply("shell", f"s{i}", command=f"echo {i}") for i in range(n - 2)]
        model = ScriptedModel([*replies, tool_reply("submit")])
        spec = load_spec("tool_coder")
        attempt = run_task(
            add_task, spec=spec, model=model, sandbox=sandbox_factory, scorer=scorer,
            run_id=f"r{n}",
        )  # fmt: skip
        db = tmp_path / f"t{n}.sqlite"
        with TrajectoryStore(db) as store:
            store.add(attempt.trajectory)
            [back] = store.trajectories(f"r{n}")
        sent = [s.input for s in attempt.trajectory.steps if s.kind == "model"]
        assert len(sent) == n
        assert [s.input for s in back.steps if s.kind == "model"] == json.loads(json.dumps(sent))
        as_sent = sum(len(json.dumps(s.input)) for s in attempt.trajectory.steps)
        sizes[n] = (_stored_bytes(db), as_sent)
    (stored_10, as_sent_10), (stored_20, as_sent_20) = sizes[10], sizes[20]
    assert as_sent_20 > 38_000_000  # as sent, the argument is in every later call
    assert stored_20 < 8_000_000  # stored: the create call, its message once, the file
    assert stored_20 - stored_10 < 200_000  # ten more small steps cost little
    assert as_sent_20 - as_sent_10 > 19_000_000  # ... where storing as sent costs 20 MB
