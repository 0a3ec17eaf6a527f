"""JSONL suites: the documented format loads, bad lines name file:line and field, and
the test command decides the reward in a fresh sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exapt.errors import ConfigError
from exapt.tasks import SandboxFactory, load_suite
from exapt.tasks.command import CommandScorer
from exapt.tasks.jsonl import JsonlSuite

from .conftest import Recorder

ADD = {
    "id": "demo/add",
    "instruction": "Write add(a, b) in add.py.",
    "files": {"add.py": "def add(a, b):\n    pass\n"},
    "tests": {"test_add.py": "from add import add\nassert add(2, 3) == 5\nprint('ok')\n"},
    "test_command": "python3 test_add.py",
}


def write_lines(path: Path, *records: Any) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_documented_example_loads(tmp_path: Path) -> None:
    extra = {
        **ADD,
        "id": "demo/add2",
        "language": "python",
        "timeout_s": 5,
        "metadata": {"difficulty": "easy"},
    }
    path = write_lines(tmp_path / "t.jsonl", ADD, "", "# a comment", extra)
    suite = load_suite(f"jsonl:{path}")
    tasks = list(suite.tasks())
    assert [t.id for t in tasks] == ["demo/add", "demo/add2"]
    assert suite.name == f"jsonl:{path}"
    first, second = tasks
    assert first.files == ADD["files"]
    assert first.hidden["tests"] == ADD["tests"]
    assert first.hidden["test_command"] == "python3 test_add.py"
    assert first.hidden["timeout_s"] == 60.0
    assert "test_add.py" not in json.dumps(first.public())  # tests stay hidden
    assert second.hidden["timeout_s"] == 5.0
    assert second.metadata["difficulty"] == "easy"
    assert second.metadata["source"] == f"{path}:4"


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        ({k: v for k, v in ADD.items() if k != "test_command"}, "test_command", "missing"),
        ({k: v for k, v in ADD.items() if k != "id"}, "id", "missing"),
        ({**ADD, "id": ""}, "id", "non-empty string"),
        ({**ADD, "tests": ["test_add.py"]}, "tests", "must be an object"),
        ({**ADD, "files": {"../escape.py": "x"}}, "files", "inside the workspace"),
        ({**ADD, "files": {"/etc/passwd": "x"}}, "files", "inside the workspace"),
        ({**ADD, "files": {"a.py": 3}}, "files", "must be text"),
        ({**ADD, "timeout_s": 0}, "timeout_s", "number > 0"),
        ({**ADD, "timeout_s": "10"}, "timeout_s", "number > 0"),
        ({**ADD, "metadata": []}, "metadata", "must be an object"),
        ({**ADD, "test_cmd": "x"}, "test_cmd", "not a known field"),
    ],
)
def test_malformed_line_names_file_line_and_field(
    tmp_path: Path, line: Any, field: str | None, words: str
) -> None:
    path = write_lines(tmp_path / "bad.jsonl", {**ADD, "id": "ok/1"}, "", line)
    with pytest.raises(ConfigError) as info:
        load_suite(f"jsonl:{path}")
    message = str(info.value)
    assert f"{path}:3" in message
    assert words in message
    if field is not None:
        assert f"field {field!r}" in message


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "dup.jsonl", ADD, ADD)
    with pytest.raises(ConfigError) as info:
        JsonlSuite(path)
    assert f"{path}:2" in str(info.value) and "line 1" in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_suite(f"jsonl:{tmp_path / 'nope.jsonl'}")
    assert "nope.jsonl" in str(info.value)
    with pytest.raises(ConfigError):
        load_suite("jsonl:")


@pytest.mark.bwrap
def test_test_command_decides_the_reward(tmp_path: Path, recorder: Recorder) -> None:
    task = next(JsonlSuite(write_lines(tmp_path / "t.jsonl", ADD)).tasks())
    scorer = JsonlSuite(tmp_path / "t.jsonl").scorer()
    good = scorer.score(task, {"add.py": b"def add(a, b):\n    return a + b\n"}, recorder)
    assert good.passed and good.reward == 1.0 and "ok" in good.feedback
    bad = scorer.score(task, {"add.py": task.files["add.py"].encode()}, recorder)
    assert not bad.passed and bad.reward == 0.0 and "AssertionError" in bad.feedback
    # an agent that rewrote the test gets the original back
    cheat = {"add.py": b"def add(a, b):\n    return 0\n", "test_add.py": b"print('ok')\n"}
    assert scorer.score(task, cheat, recorder).reward == 0.0
    # the fresh sandbox got the workspace and the tests, nothing else
    assert set(recorder.seeds[-1]) == {"add.py", "test_add.py"}


@pytest.mark.bwrap
def test_timeout_is_reward_0_with_feedback(tmp_path: Path, factory: SandboxFactory) -> None:
    record = {**ADD, "timeout_s": 2, "test_command": "python3 -c 'while True: pass'"}
    task = next(JsonlSuite(write_lines(tmp_path / "t.jsonl", record)).tasks())
    score = CommandScorer().score(task, {}, factory)
    assert score.reward == 0.0 and "timed out after 2 s" in score.feedback


def test_limits_cover_the_longest_timeout(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", ADD, {**ADD, "id": "demo/slow", "timeout_s": 200})
    limits = JsonlSuite(path).limits()
    assert limits.wall_s == 200 and limits.cpu_s >= 200
