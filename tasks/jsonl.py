"""A user's own tasks from a JSONL file (``jsonl:PATH``).

Format: UTF-8, one JSON object per line; blank lines and lines starting with ``#`` are
skipped. Fields:

| field | type | required | meaning |
|---|---|---|---|
| ``id`` | string | yes | unique in the file, e.g. ``"mytasks/fizzbuzz"`` |
| ``instruction`` | string | yes | what the agent is asked to do |
| ``files`` | object path -> text | no (``{}``) | the workspace seed the agent starts from |
| ``tests`` | object path -> text | yes | hidden test files (see below) |
| ``test_command`` | string | yes | how the tests run (see below) |
| ``language`` | string | no (``"python"``) | the task's language (informational) |
| ``timeout_s`` | number > 0 | no (60) | wall seconds allowed for the tests |
| ``report`` | string | no | ``"junit:PATH"``: the JUnit XML report ``test_command`` writes |
| ``expected_tests`` | integer > 0 | with ``report`` | how many test cases the report must list |
| ``metadata`` | object | no (``{}``) | anything else, passed on in ``Task.metadata`` |

Scoring never trusts an exit status alone (a solution can ``os._exit(0)``); a pass needs
positive evidence that the tests ran and passed. Two ways, chosen by ``test_command``:

1. **Python tests, judged by exapt's Python judge** (evidence ``judge``): a command whose
   last step is ``python3 FILE.py ...`` (each FILE one of ``tests``: a test script, which
   passes when it runs to its end) or ``python3 -m unittest [-v] [MODULE ...]`` (the
   ``unittest`` tests of those ``tests`` modules, all of them by default; each test method
   one test, counted on the host). The tests run in the judge's own process; the modules
   they import from the workspace are proxies to the solution's process (calls, values,
   objects by handle), so nothing the solution does can reach the test code. Steps before
   the last (``make; python3 test.py``) run first, in the solution's sandbox. Test files
   may import each other; they see no workspace file but through the solution's modules.
2. **Any other command, with a report**: ``report`` names a JUnit XML file the command
   writes in the workspace (``pytest --junitxml``, ``jest-junit``, Maven surefire, ``ctest
   --output-junit``...) and ``expected_tests`` how many test cases it must list; a pass
   needs exactly that many, all passed, and exit status 0 (evidence ``report``: the
   framework runs with the solution, which could forge its report; see README).

A line with neither form is refused at load (``ConfigError``): its verdict could be forged.

The tests are never shown to the agent; the scoring sandbox gets the agent's workspace
with the ``tests`` over it (an edited copy is replaced) for the command form, and the
workspace without them for the Python judge (which holds the tests). Feedback: the verdict
and counts, never the tests' text or output. Paths are relative to the workspace (no
``..``, not absolute). Example line::

    {"id": "demo/add", "instruction": "Write add(a, b) in add.py.",
     "files": {"add.py": "def add(a, b):\\n    pass\\n"},
     "tests": {"test_add.py": "from add import add\\nassert add(2, 3) == 5\\n"},
     "test_command": "python3 test_add.py"}

(one line in the file; wrapped here). The scoring sandbox has Debian's ``/usr`` (python3
without pytest, gcc...), no network and ``/workspace`` as its working directory.

A malformed line raises ``ConfigError`` naming the file, the line number and the field.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from exapt.errors import ConfigError, ExaptError
from exapt.sandbox.base import Limits
from exapt.tasks.base import SandboxFactory, Score, Task
from exapt.tasks.command import DEFAULT_TIMEOUT_S, CommandScorer, broken
from exapt.tasks.pyjudge import judge, module_names, unittest_ids
from exapt.tasks.verdict import from_python

REQUIRED = ("id", "instruction", "tests", "test_command")
OPTIONAL = ("files", "language", "timeout_s", "metadata", "report", "expected_tests")
_PYTHONS = ("python3", "python")
_SAFE_FLAGS = {"-u", "-B", "-I", "-s", "-E", "-S", "-b", "-q"}


def _bad(path: Path, line_no: int, field: str | None, problem: str) -> ConfigError:
    where = f"{path}:{line_no}" + (f": field {field!r}" if field else "")
    return ConfigError(
        f"{where}: {problem}",
        hint="see the JSONL task format in exapt/tasks/jsonl.py (id, instruction, files, "
        "tests, test_command, optional language, timeout_s, metadata)",
    )


def _text_map(value: Any, path: Path, line_no: int, field: str) -> dict[str, str]:
    """Check that ``value`` is an object of workspace-relative paths -> text."""
    if not isinstance(value, dict):
        raise _bad(
            path, line_no, field, f"must be an object path -> text, got {type(value).__name__}"
        )
    for name, text in value.items():
        rel = PurePosixPath(name)
        if not name or rel.is_absolute() or ".." in rel.parts:
            raise _bad(
                path, line_no, field, f"path {name!r} must be relative, inside the workspace"
            )
        if not isinstance(text, str):
            raise _bad(
                path, line_no, field, f"content of {name!r} must be text, got {type(text).__name__}"
            )
    return dict(value)


def parse_line(record: Any, path: Path, line_no: int, suite: str) -> Task:
    """One decoded JSON value -> a ``Task``; ``ConfigError`` naming file:line and field if bad."""
    if not isinstance(record, dict):
        raise _bad(path, line_no, None, f"expected a JSON object, got {type(record).__name__}")
    for field in REQUIRED:
        if field not in record:
            raise _bad(path, line_no, field, "is missing")
    unknown = sorted(set(record) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise _bad(path, line_no, unknown[0], "is not a known field (put extras in 'metadata')")
    for field in ("id", "instruction", "test_command", "language"):
        if field in record and not (isinstance(record[field], str) and record[field].strip()):
            raise _bad(path, line_no, field, "must be a non-empty string")
    timeout = record.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise _bad(path, line_no, "timeout_s", f"must be a number > 0, got {timeout!r}")
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _bad(path, line_no, "metadata", "must be an object")
    files = _text_map(record.get("files", {}), path, line_no, "files")
    tests = _text_map(record["tests"], path, line_no, "tests")
    how = judging(record, tests, path, line_no)
    return Task(
        id=record["id"],
        suite=suite,
        instruction=record["instruction"],
        files=files,
        hidden={
            "tests": tests,
            "test_command": record["test_command"],
            "timeout_s": float(timeout),
            **how,
        },
        language=record.get("language", "python"),
        metadata={**metadata, "source": f"{path}:{line_no}"},
    )


def _module(name: str) -> str:
    return PurePosixPath(name).with_suffix("").as_posix().replace("/", ".")


def judging(
    record: dict[str, Any], tests: dict[str, str], path: Path, line_no: int
) -> dict[str, Any]:
    """How a line's tests are judged (module doc): ``{"python": {...}}`` or
    ``{"report": PATH, "expected_tests": N}``; ``ConfigError`` if neither applies."""
    command = record["test_command"]
    report = record.get("report")
    expected = record.get("expected_tests")
    if report is not None:
        if not (isinstance(report, str) and report.startswith("junit:") and len(report) > 6):
            raise _bad(path, line_no, "report", f"must be 'junit:PATH', got {report!r}")
        where = report[len("junit:") :]
        rel = PurePosixPath(where)
        if rel.is_absolute() or ".." in rel.parts:
            raise _bad(path, line_no, "report", f"{where!r} must be a path inside the workspace")
        if isinstance(expected, bool) or not isinstance(expected, int) or expected <= 0:
            raise _bad(path, line_no, "expected_tests", "must be an integer > 0 with 'report'")
        return {"report": where, "expected_tests": expected}
    if expected is not None:
        raise _bad(path, line_no, "expected_tests", "goes with 'report' (a JUnit report)")
    python = _python_tests(command, tests)
    if python is None:
        raise _bad(
            path,
            line_no,
            "test_command",
            f"{command!r} cannot be judged soundly: an exit status alone can be forged by the "
            "solution (os._exit(0)). Run Python tests as `python3 test_x.py` or `python3 -m "
            "unittest test_x` (judged by exapt's Python judge), or add 'report' "
            "('junit:PATH' of a JUnit XML report the command writes) and 'expected_tests'",
        )
    return {"python": python}


def _python_tests(command: str, tests: dict[str, str]) -> dict[str, Any] | None:
    """The Python judge's plan for ``command`` if its last step runs ``tests`` with python."""
    cut = max(command.rfind(";"), command.rfind("&&"))
    setup, last = (
        (command[:cut], command[cut + (2 if command[cut:].startswith("&&") else 1) :])
        if cut >= 0
        else ("", command)
    )
    try:
        words = shlex.split(last)
    except ValueError:
        return None
    if not words or PurePosixPath(words[0]).name not in _PYTHONS:
        return None
    words = words[1:]
    while words and words[0] in _SAFE_FLAGS:
        words = words[1:]
    sources = {_module(p): text for p, text in tests.items() if p.endswith(".py")}
    if words[:2] == ["-m", "unittest"]:
        targets = [w for w in words[2:] if w not in ("-v", "-q", "-b", "-f", "-c")]
        if any(w.startswith("-") for w in targets):
            return None
        modules = [_module(t) if t.endswith(".py") else t for t in targets]
        if not modules:  # discovery: the test*.py modules of the tests
            modules = sorted(m for m in sources if m.rsplit(".", 1)[-1].startswith("test"))
        if not modules or any(m not in sources for m in modules):
            return None
        return {"mode": "unittest", "run": modules, "setup": setup.strip() or None}
    if not words or any(
        w.startswith("-") or w not in tests or not w.endswith(".py") for w in words
    ):
        return None
    return {"mode": "scripts", "run": [_module(w) for w in words], "setup": setup.strip() or None}


def read_tasks(path: Path, suite: str) -> list[Task]:
    """Every task of the file, validated up front (a bad line fails before any task runs)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(
            f"task file {path} is a symlink or not a regular file: refusing to read it",
            hint="give jsonl:PATH with the path of a plain JSONL file",
        )
    if not path.is_file():
        raise ConfigError(
            f"task file {path} does not exist", hint="give jsonl:PATH with the path of a JSONL file"
        )
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _bad(
                    path, line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
                ) from exc
            task = parse_line(record, path, line_no, suite)
            if task.id in seen:
                raise _bad(
                    path, line_no, "id", f"{task.id!r} repeats the id of line {seen[task.id]}"
                )
            seen[task.id] = line_no
            tasks.append(task)
    return tasks


class JsonlScorer:
    """Judges a JSONL task as its line says (module doc): the Python judge, or the command
    with its JUnit report. ``timeout_s`` overrides every task's own when set."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self._command = CommandScorer(timeout_s)

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        plan = task.hidden.get("python")
        if plan is None:
            return self._command.score(task, workspace, sandbox)
        started = time.monotonic()
        timeout_s = float(self.timeout_s or task.hidden.get("timeout_s") or DEFAULT_TIMEOUT_S)
        tests: dict[str, str] = task.hidden["tests"]
        sources = {_module(p): text for p, text in tests.items() if p.endswith(".py")}
        solution = {p: d for p, d in workspace.items() if p not in tests}
        spec = {
            "mode": plan["mode"],
            "sources": sources,
            "run": plan["run"],
            "solution_modules": module_names(solution, exclude=set(sources)),
        }
        try:
            verdict = judge(
                spec, dict(solution), sandbox, timeout_s=timeout_s, setup=plan.get("setup")
            )
        except (ExaptError, OSError) as exc:
            return broken(exc, started)
        if plan["mode"] == "unittest":
            expected = unittest_ids(sources, plan["run"])
        else:
            expected = list(plan["run"])
        return from_python(verdict, expected, started, timeout_s=timeout_s)


class JsonlSuite:
    """Tasks from a user's JSONL file, scored by their own ``test_command``.

    Example:
        suite = JsonlSuite("my_tasks.jsonl"); print(len(list(suite.tasks())))
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.name = f"jsonl:{self.path}"
        self._tasks = read_tasks(self.path, self.name)

    def tasks(self) -> Iterator[Task]:
        yield from self._tasks

    def scorer(self) -> JsonlScorer:
        return JsonlScorer()

    def limits(self) -> Limits:
        """Sandbox limits for scoring: the defaults, with wall and CPU time for the longest
        ``timeout_s`` of the file."""
        longest = max((float(t.hidden["timeout_s"]) for t in self._tasks), default=60.0)
        return Limits(wall_s=longest, cpu_s=max(30, int(longest) + 1))

    def ro_binds(self) -> list[str]:
        """Host paths a scoring sandbox needs bound read-only (none: only Debian's /usr)."""
        return []
