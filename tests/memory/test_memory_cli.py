"""``exapt memory ...``: stats, search, show, export, prune, reembed, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memory_helpers import make_task, make_trajectory
from typer.testing import CliRunner

from exapt.cli import app
from exapt.memory.insights import Insights, Op
from exapt.memory.reflections import Reflections
from exapt.memory.store import MemoryStore
from exapt.tasks.base import Score

runner = CliRunner()


@pytest.fixture
def filled(tmp_path: Path, embedder: object) -> str:
    folder = tmp_path / "mem"
    store = MemoryStore(str(folder))
    fail = Score(reward=0.0, passed=False, feedback="AssertionError")
    refl = Reflections(store)
    refl.add(
        make_task("rev", "Reverse the words of a sentence."),
        make_trajectory("rev"),
        fail,
        text="split first",
    )
    refl.add(
        make_task("pr", "Check whether n is prime."),
        make_trajectory("pr"),
        fail,
        text="n=1 is not prime",
    )
    Insights(store).apply([Op("ADD", None, "Run the visible tests before submitting.")])
    meta = {
        "kind": "skill",
        "name": "inc",
        "version": 1,
        "status": "active",
        "used": 6,
        "passed_when_used": 0,
        "signature": "(x)",
        "docstring": "Add one.",
        "payload": {"code": "def inc(x):\n    return x + 1\n"},
    }
    store.add("skills", ["skill:inc:v1"], ["def inc(x): Add one to a number."], [meta])
    return str(folder)


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["memory", *args])
    return result.exit_code, result.output


def test_stats_json(filled: str) -> None:
    code, out = _run("stats", "--json", "--memory-url", filled)
    assert code == 0, out
    data = json.loads(out)
    assert data["reflections"] == {"total": 2, "tasks": 2}
    assert data["skills"]["total"] == 1 and data["skills"]["active"] == 1
    assert data["insights"] == {"total": 1, "strongest": 2}
    assert data["embedder"] == "minilm"


def test_search_kinds_and_show(filled: str) -> None:
    code, out = _run(
        "search",
        "is this number prime",
        "--kind",
        "reflection",
        "-k",
        "1",
        "--json",
        "--memory-url",
        filled,
    )
    assert code == 0, out
    (hit,) = json.loads(out)
    assert hit["metadata"]["text"] == "n=1 is not prime" and hit["kind"] == "reflections"
    code, out = _run("search", "increment", "--json", "--memory-url", filled)
    kinds = {h["kind"] for h in json.loads(out)}
    assert kinds == {"reflections", "skills", "insights"}
    code, out = _run("show", "skill:inc:v1", "--memory-url", filled)
    assert code == 0 and json.loads(out)["payload"]["code"].startswith("def inc")
    code, out = _run("search", "x", "--kind", "bogus", "--memory-url", filled)
    assert code != 0


def test_export_prune_and_reembed(filled: str, tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    code, out = _run("export", str(target), "--memory-url", filled)
    assert code == 0, out
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 4 and {r["kind"] for r in rows} == {"reflections", "skills", "insights"}
    code, out = _run("prune", "--json", "--memory-url", filled)
    assert code == 0 and json.loads(out) == {"retired": 1, "dropped": 0}
    code, out = _run("prune", "--drop", "--json", "--memory-url", filled)
    assert json.loads(out) == {"retired": 0, "dropped": 1}
    code, out = _run("reembed", "--embedder", "minilm", "--memory-url", filled)
    assert code == 0 and "3 reflections" not in out and "2 reflections" in out


def test_main_reports_a_corrupt_folder_with_a_hint(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "chroma.sqlite3").write_bytes(b"garbage" * 10)
    proc = subprocess.run(
        [sys.executable, "-m", "exapt.cli", "memory", "stats", "--memory-url", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "corrupt" in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr
