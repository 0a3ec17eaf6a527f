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
        # exit status alone is never a verdict: such lines are refused at load
        ({**ADD, "test_command": "sh run_tests.sh"}, "test_command", "cannot be judged soundly"),
        ({**ADD, "test_command": "python3 test_add.py | tee log"}, "test_command", "soundly"),
        ({**ADD, "test_command": "python3 other.py"}, "test_command", "soundly"),
        ({**ADD, "report": "xml:r.xml", "expected_tests": 1}, "report", "junit:PATH"),
        ({**ADD, "report": "junit:../r.xml", "expected_tests": 1}, "report", "inside"),
        ({**ADD, "report": "junit:r.xml"}, "expected_tests", "integer > 0"),
        ({**ADD, "expected_tests": 3}, "expected_tests", "goes with 'report'"),
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
def test_python_tests_are_judged_by_the_judge(tmp_path: Path, recorder: Recorder) -> None:
    task = next(JsonlSuite(write_lines(tmp_path / "t.jsonl", ADD)).tasks())
    assert task.hidden["python"] == {"mode": "scripts", "run": ["test_add"], "setup": None}
    scorer = JsonlSuite(tmp_path / "t.jsonl").scorer()
    good = scorer.score(task, {"add.py": b"def add(a, b):\n    return a + b\n"}, recorder)
    assert good.passed and good.reward == 1.0 and good.trusted
    assert "ok" not in good.feedback  # what the test printed stays in the judge
    bad = scorer.score(task, {"add.py": task.files["add.py"].encode()}, recorder)
    assert not bad.passed and bad.reward == 0.0 and bad.failure == "tests_failed"
    # an agent that rewrote the test changes nothing: the judge holds the task's own
    cheat = {"add.py": b"def add(a, b):\n    return 0\n", "test_add.py": b"print('ok')\n"}
    assert scorer.score(task, cheat, recorder).reward == 0.0
    # the solution's sandbox got the workspace without the tests; the judge's, nothing
    assert set(recorder.seeds[-2]) == {"add.py"} and recorder.seeds[-1] == {}


@pytest.mark.bwrap
def test_setup_steps_and_unittest_modules(tmp_path: Path, factory: SandboxFactory) -> None:
    unit = (
        "import unittest\nfrom add import add\n"
        "class T(unittest.TestCase):\n"
        "    def test_a(self): self.assertEqual(add(2, 3), 5)\n"
        "    def test_b(self): self.assertEqual(add(-1, 1), 0)\n"
    )
    record = {
        **ADD,
        "tests": {"test_unit.py": unit},
        "test_command": "echo building > built.txt && python3 -m unittest -v test_unit",
    }
    task = next(JsonlSuite(write_lines(tmp_path / "t.jsonl", record)).tasks())
    assert task.hidden["python"]["setup"] == "echo building > built.txt"
    good = "import os\nassert open('built.txt').read() == 'building\\n'\n"
    good += "def add(a, b):\n    return a + b\n"
    score = (
        JsonlSuite(tmp_path / "t.jsonl").scorer().score(task, {"add.py": good.encode()}, factory)
    )
    assert score.passed and (score.tests_expected, score.tests_passed) == (2, 2), score.feedback
    half = b"def add(a, b):\n    return 5\n"
    score = JsonlSuite(tmp_path / "t.jsonl").scorer().score(task, {"add.py": half}, factory)
    assert not score.passed and score.tests_passed == 1


@pytest.mark.bwrap
def test_timeout_is_reward_0_with_feedback(tmp_path: Path, factory: SandboxFactory) -> None:
    task = next(JsonlSuite(write_lines(tmp_path / "t.jsonl", {**ADD, "timeout_s": 2})).tasks())
    looping = {"add.py": b"while True:\n    pass\n"}
    score = JsonlSuite(tmp_path / "t.jsonl").scorer().score(task, looping, factory)
    assert score.reward == 0.0 and "timed out after 2 s" in score.feedback
    assert score.failure == "timeout"


_JUNIT = (
    "import sys\n"
    "from add import add\n"
    "cases = [add(2, 3) == 5, add(1, 1) == 2]\n"
    "xml = '<testsuite>' + ''.join(\n"
    "    '<testcase name=\"t%d\">%s</testcase>' % (i, '' if ok else '<failure/>')\n"
    "    for i, ok in enumerate(cases)) + '</testsuite>'\n"
    "open('out/report.xml', 'w').write(xml)\n"
    "sys.exit(0 if all(cases) else 1)\n"
)


@pytest.mark.bwrap
def test_a_command_with_a_junit_report(tmp_path: Path, factory: SandboxFactory) -> None:
    record = {
        **ADD,
        "tests": {"check.py": _JUNIT},
        "test_command": "mkdir -p out && python3 check.py",
        "report": "junit:out/report.xml",
        "expected_tests": 2,
    }
    task = next(JsonlSuite(write_lines(tmp_path / "t.jsonl", record)).tasks())
    scorer = CommandScorer()
    good = scorer.score(task, {"add.py": b"def add(a, b):\n    return a + b\n"}, factory)
    assert good.passed and good.evidence == "report" and not good.trusted
    assert (good.tests_expected, good.tests_passed) == (2, 2)
    bad = scorer.score(task, {"add.py": b"def add(a, b):\n    return 5\n"}, factory)
    assert not bad.passed and bad.tests_passed == 1
    # exit 0 without a report, and a report the agent planted, are no pass
    gone = scorer.score(task, {"add.py": b"import os\nos._exit(0)\n"}, factory)
    assert not gone.passed and gone.failure == "no_report"
    planted = {
        "add.py": b"import os\nos._exit(0)\n",
        "out/report.xml": b'<testsuite><testcase name="a"/><testcase name="b"/></testsuite>',
    }
    assert scorer.score(task, planted, factory).failure == "no_report"


def test_limits_cover_the_longest_timeout(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", ADD, {**ADD, "id": "demo/slow", "timeout_s": 200})
    limits = JsonlSuite(path).limits()
    assert limits.wall_s == 200 and limits.cpu_s >= 200


def test_a_symlinked_or_special_task_file_is_refused(tmp_path: Path) -> None:
    real = write_lines(tmp_path / "t.jsonl", ADD)
    (tmp_path / "link.jsonl").symlink_to(real)
    with pytest.raises(ConfigError, match="symlink"):
        load_suite(f"jsonl:{tmp_path / 'link.jsonl'}")
    import os

    os.mkfifo(tmp_path / "fifo.jsonl")  # reading it would block forever
    with pytest.raises(ConfigError, match="not a regular file"):
        load_suite(f"jsonl:{tmp_path / 'fifo.jsonl'}")
