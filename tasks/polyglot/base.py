"""The nouns of Polyglot: an ``Exercise``, a ``Toolchain``, and the ``Language`` protocol each
language file implements (``lang_*.py``, one language per file).

A language says whether this machine can score it (``toolchain``), how its tests are run
(``command``), which files of an agent's workspace may enter the scoring sandbox
(``keeps``: its sources, never a build file), which tests the host expects (``expected``,
counted from the task's own test files), and how a run is turned into a ``Score``
(``score``). ``ReportLanguage`` is the shared shape of the languages whose framework writes
a structured report (C++, Rust, JavaScript, Java, Go); Python is judged by the Python judge.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from exapt.records import Score, Task
from exapt.tasks.base import SandboxFactory
from exapt.tasks.command import from_report, run_for_report
from exapt.tasks.verdict import Seen, failed

#: Where a test command writes its framework's report, inside the workspace; a workspace's
#: own ``.exapt/`` never enters the scoring sandbox.
REPORT_DIR = ".exapt"

# Folders of an exercise that hold spoilers (approaches, articles, the example solution) or
# metadata: never part of the agent's workspace.
SPOILER_DIRS = frozenset({".meta", ".docs", ".approaches", ".articles"})


@dataclass(frozen=True)
class Exercise:
    """One exercise as read from the benchmark, before it becomes a ``Task``."""

    language: str
    name: str
    instructions: str
    solution_files: dict[str, str]
    test_files: dict[str, str]
    support_files: dict[str, str] = field(default_factory=dict)
    reference_files: dict[str, str] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class Toolchain:
    """How one language is tested in the sandbox, and whether this machine can.

    ``reason`` is empty when the language can be scored here, else it says why not.
    """

    language: str
    reason: str
    command: Callable[[Exercise], str] | None = None
    timeout_s: float = 120.0
    env: dict[str, str] = field(default_factory=dict)
    ro_binds: tuple[str, ...] = ()
    #: build output an agent may leave in its workspace; never copied into the scoring sandbox
    drop_dirs: tuple[str, ...] = ()
    #: files of our own the test command needs (path -> text), copied in when scoring
    harness_files: dict[str, str] = field(default_factory=dict)

    @property
    def supported(self) -> bool:
        return not self.reason


class Language(Protocol):
    """One Polyglot language (see module doc)."""

    name: str

    def toolchain(self) -> Toolchain: ...

    def keeps(self, path: str, task: Task) -> bool:
        """Whether the workspace's ``path`` may enter the scoring sandbox."""
        ...

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score: ...


def scoring_files(
    language: Language, task: Task, workspace: Mapping[str, bytes], tests: Mapping[str, str]
) -> dict[str, str | bytes]:
    """The scoring sandbox's files: the workspace's sources the language keeps, then every
    build and support file of the task (``hidden["restore"]``: the task's versions, over
    whatever the agent made of them), then the tests."""
    files: dict[str, str | bytes] = {
        path: data
        for path, data in workspace.items()
        if path.split("/", 1)[0] != REPORT_DIR and language.keeps(path, task)
    }
    files.update(task.hidden.get("restore", {}))
    files.update(tests)
    return files


def build_errors(log: str, task: Task) -> str:
    """A few compiler error lines about the solution's own files (never a test file's:
    those would quote hidden test source), for the feedback."""
    own = [PurePosixPath(p).name for p in task.metadata.get("solution_files", [])]
    hidden = [PurePosixPath(p).name for p in task.hidden.get("tests", {})]
    log_lines = log.splitlines()
    lines = []
    for i, line in enumerate(log_lines):
        if "error" not in line.lower() or any(name in line for name in hidden):
            continue
        # the location may be on the next lines (rustc: "  --> src/lib.rs:3:5")
        near = log_lines[i : i + 3]
        if any(name in x for x in near for name in own) and not any(
            name in x for x in near for name in hidden
        ):
            lines.append(line.strip()[:200])
        if len(lines) == 5:
            break
    return "\n".join(lines)


class ReportLanguage:
    """A language whose tests run by one shell command in a fresh sandbox and whose test
    framework writes a structured report to ``REPORT_DIR/<report>``.

    Evidence ``report``: a pass needs the report, listing exactly the tests the host counted
    in the task's test files (by name, or by number where names are computed), all passed,
    and the command's exit status 0. The exit status alone never passes (a solution that
    exits 0 early writes no report); but the framework runs in the solution's process,
    so a solution built to forge its report could (see README, Threat model).
    """

    name = ""
    report = ""  # file name under REPORT_DIR
    by_count = False  # compare how many tests, not their names

    def toolchain(self) -> Toolchain:
        raise NotImplementedError

    def keeps(self, path: str, task: Task) -> bool:
        raise NotImplementedError

    def expected(self, tests: Mapping[str, str]) -> list[str]:
        """The tests the host counts in the task's test files."""
        raise NotImplementedError

    def parse(self, data: bytes) -> Seen:
        """The tests the report lists (``ValueError`` for a malformed report)."""
        raise NotImplementedError

    def prepare_tests(self, tests: Mapping[str, str]) -> dict[str, str]:
        """The test files as the scoring sandbox gets them (e.g. skipped tests enabled)."""
        return dict(tests)

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        hidden = task.hidden
        started = time.monotonic()
        timeout_s = float(hidden.get("timeout_s") or 120.0)
        files = scoring_files(self, task, workspace, self.prepare_tests(hidden["tests"]))
        expected = self.expected(hidden["tests"])
        ran = run_for_report(
            sandbox,
            files,
            hidden["test_command"],
            f"{REPORT_DIR}/{self.report}",
            timeout_s=timeout_s,
            env=hidden.get("env"),
            started=started,
        )
        if isinstance(ran, Score):
            return ran
        result, report = ran
        seen = Seen({})
        if report is not None:
            try:
                seen = self.parse(report)
            except (ValueError, KeyError, TypeError, SyntaxError) as exc:  # (XML ParseError)
                note = f"the test report is malformed ({type(exc).__name__})"
                return failed("no_report", note, started)
        errors = "" if seen.outcomes else build_errors(result.stdout + "\n" + result.stderr, task)
        note = "the tests did not build, or did not run to the end (no test report)"
        return from_report(
            seen,
            expected,
            result,
            started,
            by_count=self.by_count,
            nothing_ran=note + (f"\n{errors}" if errors else ""),
        )


def count_calls(pattern: re.Pattern[str], text: str) -> list[str]:
    """Matches of ``pattern`` outside ``//`` and ``/* */`` comments (C-like test files)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = "\n".join(
        line.split("//", 1)[0] if "://" not in line else line for line in text.splitlines()
    )
    return pattern.findall(text)
