"""A user's own tasks from a JSONL file (``jsonl:PATH``).

Format: UTF-8, one JSON object per line; blank lines and lines starting with ``#`` are
skipped. Fields:

| field | type | required | meaning |
|---|---|---|---|
| ``id`` | string | yes | unique in the file, e.g. ``"mytasks/fizzbuzz"`` |
| ``instruction`` | string | yes | what the agent is asked to do |
| ``files`` | object path -> text | no (``{}``) | the workspace seed the agent starts from |
| ``tests`` | object path -> text | yes | hidden test files (see below) |
| ``test_command`` | string | yes | shell command; exit status 0 = pass (see below) |
| ``language`` | string | no (``"python"``) | the task's language (informational) |
| ``timeout_s`` | number > 0 | no (60) | wall seconds allowed for ``test_command`` |
| ``metadata`` | object | no (``{}``) | anything else, passed on in ``Task.metadata`` |

Scoring: after the agent finished, a fresh sandbox gets the agent's workspace, then the
``tests`` files copied over it (never shown to the agent; an edited copy is replaced), and
runs ``test_command`` in ``/workspace``. Exit status 0 = reward 1; any other status or a
timeout = reward 0, with the tail of the output as feedback.

Paths are relative to the workspace (no ``..``, not absolute). Example line::

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
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from exapt.errors import ConfigError
from exapt.sandbox.base import Limits
from exapt.tasks.base import Task
from exapt.tasks.command import DEFAULT_TIMEOUT_S, CommandScorer

REQUIRED = ("id", "instruction", "tests", "test_command")
OPTIONAL = ("files", "language", "timeout_s", "metadata")


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
    return Task(
        id=record["id"],
        suite=suite,
        instruction=record["instruction"],
        files=files,
        hidden={
            "tests": tests,
            "test_command": record["test_command"],
            "timeout_s": float(timeout),
        },
        language=record.get("language", "python"),
        metadata={**metadata, "source": f"{path}:{line_no}"},
    )


def read_tasks(path: Path, suite: str) -> list[Task]:
    """Every task of the file, validated up front (a bad line fails before any task runs)."""
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

    def scorer(self) -> CommandScorer:
        return CommandScorer()

    def limits(self) -> Limits:
        """Sandbox limits for scoring: the defaults, with wall and CPU time for the longest
        ``timeout_s`` of the file."""
        longest = max((float(t.hidden["timeout_s"]) for t in self._tasks), default=60.0)
        return Limits(wall_s=longest, cpu_s=max(30, int(longest) + 1))

    def ro_binds(self) -> list[str]:
        """Host paths a scoring sandbox needs bound read-only (none: only Debian's /usr)."""
        return []
