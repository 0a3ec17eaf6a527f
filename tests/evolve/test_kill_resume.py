"""SIGKILL at any moment, then --resume: the archive is consistent, no finished evaluation
is lost or run twice, and the result equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from exapt.evolve.archive import STATUSES, Archive
from exapt.evolve.variant import Variant

from .helpers import agent_script, exapt_process, mutator_script, write_tasks


def args(tmp: Path, bwrap: str, generations: int) -> list[str]:
    tasks = write_tasks(tmp / "tasks.jsonl", test_prefix="sleep 0.1;")
    return [
        "evolve", "--archive", "k", "--suite", f"jsonl:{tasks}", "--seed", "tool_coder",
        "--model", f"scripted:{agent_script(tmp / 'agent.json')}",
        "--mutator-model", f"scripted:{mutator_script(tmp / 'mutator.json')}",
        "--operators", "reflect_prompt,graph_options", "--generations", str(generations),
        "--children", "2",
        "--stages", "1,2,all", "--sandbox", bwrap, "--workers", "2", "--no-novelty", "--json",
    ]  # fmt: skip


def finished(home: Path) -> list[tuple[str, str]]:
    log = home / "archive" / "k" / "jobs.log"
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    # "recover": stored before the kill, cached after it, not run again
    return [(e["variant"], e["task"]) for e in events if e["event"] in ("finish", "recover")]


def run_to_end(cmd: list[str], home: Path) -> dict[str, Any]:
    proc = exapt_process(*cmd, home=home)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return dict(json.loads(out))


def fingerprint(home: Path) -> list[tuple[Any, ...]]:
    os.environ["EXAPT_HOME"] = str(home)
    with Archive.open("k") as archive:
        rows = [
            (e.variant_id, tuple(e.parent_ids), e.generation, e.slot, e.status, e.stage,
             round(e.score, 6), e.n_scored)
            for e in archive.entries()
        ]  # fmt: skip
        scores = sorted((v, t, s, r) for v, t, s, r, _f, _t in archive.all_scores())
    return [*rows, *scores]


def check_consistent(home: Path) -> None:
    os.environ["EXAPT_HOME"] = str(home)
    with Archive.open("k") as archive:
        ids = {e.variant_id for e in archive.entries()}
        for e in archive.entries():
            assert e.status in STATUSES
            assert Variant.from_dir(archive.variant_dir(e.variant_id)).id == e.variant_id
            assert all(p in ids for p in e.parent_ids)
        for v, _t, _s, _r, _f, _fin in archive.all_scores():
            assert v in ids
        for a in archive.attempts():
            if a.outcome == "child":
                assert a.variant_id in ids


@pytest.mark.parametrize(
    ("kill_after", "generations"), [(4, 2), pytest.param(14, 3, marks=pytest.mark.slow)]
)
def test_sigkill_then_resume_loses_and_repeats_nothing(
    tmp_path: Path, bwrap: str, kill_after: int, generations: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAPT_HOME", str(tmp_path / "unused"))
    cmd = args(tmp_path, bwrap, generations)
    reference = run_to_end(cmd, tmp_path / "reference")
    assert reference["status"] == "done"

    home = tmp_path / "home"
    proc = exapt_process(*cmd, home=home)
    deadline = time.monotonic() + 300
    while len(finished(home)) < kill_after:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the run, its sandboxes, everything in its session
    proc.wait(timeout=30)
    before = finished(home)
    check_consistent(home)
    os.environ["EXAPT_HOME"] = str(home)
    with Archive.open("k") as archive:
        assert (archive.meta("run") or {}).get("status") == "running"  # killed mid-run

    resumed = run_to_end(["evolve", "--archive", "k", "--resume", "--json"], home)
    assert resumed["status"] == "done"
    check_consistent(home)
    after = finished(home)
    assert after[: len(before)] == before
    assert len(after) == len(set(after)), "an evaluation was run twice"
    assert fingerprint(home) == fingerprint(tmp_path / "reference")
    spend = resumed["spend"]
    assert spend["evaluations"] + spend["test_evaluations"] == len(after)
