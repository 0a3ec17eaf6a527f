"""The trajectory store: WAL, idempotent adds, threads, processes, export to fine-tuning data."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from exapt.errors import ConfigError
from exapt.memory.trajectories import TrajectoryStore
from exapt.memory.trajectory_export import export_jsonl, to_finetune_record
from exapt.memory.trajectory_schema import STORE_SCHEMA
from exapt.records import Outcome, Step, Trajectory

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "shell",
            "description": "run a command",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
        },
    }
]


def chat_trajectory(run_id: str = "r1", task_id: str = "t1", trial: int = 0, passed: bool = True):
    """A ReAct-style attempt: the model sees the whole history on every call."""
    system = {"role": "system", "content": "You are a coder."}
    user = {"role": "user", "content": "Make the tests pass."}
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "shell", "arguments": '{"cmd": "ls"}'},
            }
        ],
    }
    t = Trajectory(run_id=run_id, task_id=task_id, trial=trial, variant_id="v1", model="scripted")
    t.add(
        Step(
            kind="model",
            input={"messages": [system, user], "tools": TOOLS},
            output=call,
            tokens_in=10,
            tokens_out=3,
            cost_usd=0.01,
        )
    )
    t.add(
        Step(
            kind="tool",
            input={"name": "shell", "arguments": {"cmd": "ls"}, "id": "c1"},
            output="main.py\n",
        )
    )
    tool_msg = {"role": "tool", "tool_call_id": "c1", "content": "main.py\n"}
    t.add(
        Step(
            kind="model",
            input={"messages": [system, user, call, tool_msg], "tools": TOOLS},
            output={"role": "assistant", "content": "Done."},
            tokens_in=20,
            tokens_out=1,
        )
    )
    t.add(Step(kind="score", output={"reward": 1.0 if passed else 0.0}))
    t.result = Outcome(
        reward=1.0 if passed else 0.0, passed=passed, feedback="1 passed", stop_reason="done"
    )
    t.wall_s = 1.5
    return t


@pytest.fixture
def store(tmp_path: Path):
    with TrajectoryStore(tmp_path / "t.sqlite") as s:
        yield s


def test_wal_mode_and_schema_version(store: TrajectoryStore) -> None:
    assert store.journal_mode == "wal"
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == STORE_SCHEMA
    conn.close()


def test_round_trip_keeps_steps_and_result(store: TrajectoryStore) -> None:
    store.create_run("r1", {"suite": "jsonl:x"})
    original = chat_trajectory()
    store.add(original)
    [back] = store.trajectories("r1")
    assert back.model_dump() == original.model_dump()
    assert [s.kind for s in store.trajectories("r1", "t1")[0].steps] == [
        "model",
        "tool",
        "model",
        "score",
    ]
    assert store.trajectories("r1", "other") == []
    assert store.trajectories("r1", with_steps=False)[0].steps == []


def test_add_is_idempotent_per_task_and_trial(store: TrajectoryStore) -> None:
    store.add(chat_trajectory(passed=False))
    store.add(chat_trajectory(passed=True))  # the same (run, task, trial): replaces
    store.add(chat_trajectory(trial=1))
    got = store.trajectories("r1")
    keys = [(t.task_id, t.trial, t.result.passed) for t in got]
    assert keys == [("t1", 0, True), ("t1", 1, True)]
    assert len(got[0].steps) == 4  # steps replaced, not appended
    assert store.done_keys("r1") == {("t1", 0), ("t1", 1)}
    assert store.done_keys("nope") == set()


def test_runs_lifecycle(store: TrajectoryStore) -> None:
    store.create_run("a", {"suite": "s1"})
    store.add(chat_trajectory(run_id="a", passed=True))
    store.add(chat_trajectory(run_id="a", task_id="t2", passed=False))
    store.finish_run("a", {"pass_rate": 0.5}, "done")
    store.create_run("b", {"suite": "s2"})
    run = store.get_run("a")
    assert run is not None
    assert (run.status, run.summary, run.config) == ("done", {"pass_rate": 0.5}, {"suite": "s1"})
    assert (run.n_trajectories, run.n_passed) == (2, 1)
    assert [r.run_id for r in store.list_runs()] == ["b", "a"]  # newest first
    assert store.get_run("missing") is None
    with pytest.raises(KeyError):
        store.finish_run("missing", {}, "done")
    store.create_run("a", {"suite": "changed"})  # a resume: running again, config kept
    run = store.get_run("a")
    assert run is not None and (run.status, run.config) == ("running", {"suite": "s1"})


def test_concurrent_adds_from_eight_threads(store: TrajectoryStore) -> None:
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            for i in range(25):
                store.add(chat_trajectory(task_id=f"w{w}-t{i}", passed=i % 2 == 0))
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.done_keys("r1")) == 200
    run = store.get_run("r1")
    assert run is not None and run.n_passed == 8 * 13  # i = 0, 2, ..., 24


def test_two_processes_write_one_file(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    code = (
        "import sys\n"
        "from exapt.records import Trajectory\n"
        "from exapt.memory.trajectories import TrajectoryStore\n"
        "s = TrajectoryStore(sys.argv[1])\n"
        "for i in range(50):\n"
        "    s.add(Trajectory(run_id='r', task_id=f'{sys.argv[2]}-{i}'))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), p]) for p in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(TrajectoryStore(db).done_keys("r")) == 100


def test_foreign_or_newer_file_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"junk\.sqlite"):
        TrajectoryStore(junk)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="users"):
        TrajectoryStore(other)
    newer = tmp_path / "newer.sqlite"
    TrajectoryStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigError, match="schema 99"):
        TrajectoryStore(newer)


def test_export_chat_record_with_tool_calls(store: TrajectoryStore, tmp_path: Path) -> None:
    store.add(chat_trajectory(task_id="ok", passed=True))
    store.add(chat_trajectory(task_id="bad", passed=False))
    out = tmp_path / "ft.jsonl"
    assert export_jsonl(store, out, "r1") == 1  # passed only
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert set(record) == {"messages", "tools"}
    assert record["tools"] == TOOLS
    roles = [m["role"] for m in record["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    call = record["messages"][2]["tool_calls"][0]
    assert call == {
        "id": "c1",
        "type": "function",
        "function": {"name": "shell", "arguments": '{"cmd": "ls"}'},
    }
    assert record["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "main.py\n"}
    assert export_jsonl(store, out, "r1", passed_only=False) == 2
    assert export_jsonl(store, out, "no-such-run") == 0
    assert out.read_text() == ""


def test_export_rebuilds_history_from_delta_steps() -> None:
    """An agent that sends only new messages: tool results come from the tool steps."""
    steps = [
        Step(
            kind="model",
            input={
                "messages": [{"role": "user", "content": "go"}],
                "tools": [{"name": "submit", "parameters": {"type": "object"}}],
            },
            output={
                "text": "",
                "tool_calls": [{"id": "x", "name": "submit", "arguments": {"answer": 4}}],
            },
        ),
        Step(
            kind="tool",
            input={"name": "submit", "arguments": {"answer": 4}, "id": "x"},
            output="submitted",
        ),
        Step(
            kind="model",
            input={"messages": [{"role": "user", "content": "anything else?"}]},
            output="no",
        ),
    ]
    record = to_finetune_record(steps)
    assert record is not None
    assert [m["role"] for m in record["messages"]] == [
        "user",
        "assistant",
        "tool",
        "user",
        "assistant",
    ]
    assert record["messages"][1]["tool_calls"][0]["function"] == {
        "name": "submit",
        "arguments": '{"answer": 4}',
    }
    assert record["messages"][2]["content"] == "submitted"
    assert record["messages"][4] == {"role": "assistant", "content": "no"}
    assert record["tools"] == [
        {"type": "function", "function": {"name": "submit", "parameters": {"type": "object"}}}
    ]


def test_export_completion_record_uses_last_completion() -> None:
    steps = [
        Step(kind="model", input={"prompt": "def f():\n"}, output="    return 1\n"),
        Step(kind="tool", input={"name": "check", "id": ""}, output="AssertionError"),
        Step(
            kind="model",
            input={"prompt": "def f():\n"},
            output={"role": "assistant", "content": "    return 2\n"},
        ),
    ]
    assert to_finetune_record(steps) == {"prompt": "def f():\n", "completion": "    return 2\n"}
    assert to_finetune_record([Step(kind="note", output="nothing")]) is None
