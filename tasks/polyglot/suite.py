"""Polyglot tasks, the suite and its scorer; the languages by name (one file each).

A task's workspace holds the solution stubs and the support files the build needs; its
``hidden`` part holds the tests (copied in only when scoring), the build and support files
to restore over the agent's copies, the test command, and the reference solution (for
harness checks, never shown to the agent).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from exapt.errors import ConfigError, UnavailableError
from exapt.records import Score, Task
from exapt.sandbox.base import Limits
from exapt.tasks.base import SandboxFactory
from exapt.tasks.polyglot import (
    lang_cpp,
    lang_go,
    lang_java,
    lang_javascript,
    lang_python,
    lang_rust,
)
from exapt.tasks.polyglot.base import SPOILER_DIRS, Exercise, Language, Toolchain
from exapt.tasks.polyglot.load import (
    LANGUAGES,
    missing_dependencies,
    read_checkout,
    read_jsonl,
    reference_solution,
)

log = logging.getLogger("exapt.tasks.polyglot")

#: language name -> its implementation (a new language is one new ``lang_*.py`` file)
LANGS: dict[str, Language] = {
    module.LANGUAGE.name: module.LANGUAGE
    for module in (lang_cpp, lang_go, lang_java, lang_javascript, lang_python, lang_rust)
}

INSTRUCTION = """\
{instructions}

# Your task

Use the instructions above to modify the supplied files: {solution_files}.
Don't change the names of existing functions, classes or types: hidden unit tests use them.
Only use the standard library of the language; don't install packages (there is no network).
Don't edit the build files ({support_files}); they are restored before the tests run.
"""

#: build files a language's solution stubs may include (Rust's Cargo.toml): the task's
#: version is restored over the agent's
BUILD_FILES = frozenset({"Cargo.toml", "package.json", "CMakeLists.txt", "go.mod", "build.gradle"})

#: Exercises whose tests cannot compile against what this machine has, found by running the
#: reference solutions (the shared sample; a full checkout may hold more: they show up as a
#: reference that fails, see tests/tasks/test_polyglot.py).
KNOWN_UNSCORABLE: dict[str, str] = {
    "java/mazy-mice": "its tests use AssertJ's hasDimensions, newer than Debian's AssertJ 3.14",
    # the test's SuperMock walks the call stack for the solution's __init__ frame: a judge in
    # another process (the only kind that cannot be fooled) never sees the solution's stack
    "python/paasio": "its tests inspect the solution's call stack (test_utils.SuperMock), "
    "which the Python judge, in another process, cannot see",
}


@cache
def toolchain(language: str) -> Toolchain:
    """The toolchain of ``language`` on this machine (cached per process).

    Checks what the sandbox will find: it binds the host's /usr read-only, so a tool in /usr
    is available as is; a toolchain elsewhere (rustup's, jest) is bound read-only via
    ``ro_binds``.
    """
    lang = LANGS.get(language)
    if lang is None:
        return Toolchain(language, f"unknown language {language!r} (known: {', '.join(LANGUAGES)})")
    return lang.toolchain()


def languages_supported() -> dict[str, str]:
    """Every Polyglot language -> ``""`` if it can be scored on this machine, else why not."""
    return {language: toolchain(language).reason for language in LANGUAGES}


def make_task(exercise: Exercise, suite: str) -> Task:
    """The ``Task`` of one exercise (any language; scoring needs a working toolchain)."""
    chain = toolchain(exercise.language)
    support = {
        path: text
        for path, text in exercise.support_files.items()
        if path.split("/", 1)[0] not in SPOILER_DIRS
    }
    builds = {p: t for p, t in exercise.solution_files.items() if Path(p).name in BUILD_FILES}
    solution_names = ", ".join(f"`{p}`" for p in exercise.solution_files) or "the files"
    support_names = ", ".join(f"`{p}`" for p in {**support, **builds}) or "none"
    return Task(
        id=f"polyglot/{exercise.language}/{exercise.name}",
        suite=suite,
        instruction=INSTRUCTION.format(
            instructions=exercise.instructions.strip(),
            solution_files=solution_names,
            support_files=support_names,
        ),
        files={**support, **exercise.solution_files},
        hidden={
            "tests": dict(exercise.test_files),
            "restore": {**support, **builds, **chain.harness_files},
            "test_command": chain.command(exercise) if chain.command else "",
            "timeout_s": chain.timeout_s,
            "env": dict(chain.env),
            "drop_dirs": list(chain.drop_dirs),
            "reference": reference_solution(exercise),
            "unscorable": unscorable(exercise),
        },
        language=exercise.language,
        metadata={
            "name": exercise.name,
            "solution_files": sorted(exercise.solution_files),
            # what an agent's own sandbox needs to build and test here (no secrets in it)
            "toolchain_env": dict(chain.env),
            "ro_binds": list(chain.ro_binds),
            "source": exercise.source,
        },
    )


def unscorable(exercise: Exercise) -> str:
    """Why this exercise's tests cannot run here ('' if they can)."""
    reason = toolchain(exercise.language).reason
    if reason:
        return reason
    known = KNOWN_UNSCORABLE.get(f"{exercise.language}/{exercise.name}")
    if known:
        return known
    deps = missing_dependencies(exercise)
    if deps:
        return f"its build needs {', '.join(deps)}, which cannot be fetched offline"
    return ""


def reference_workspace(task: Task) -> dict[str, bytes]:
    """The workspace of a perfect attempt: the seed with the reference solution applied."""
    files = {**task.files, **task.hidden.get("reference", {})}
    return {path: text.encode() for path, text in files.items()}


class PolyglotScorer:
    """Scores a task with its language (``LANGS``) in fresh sandboxes.

    Raises ``UnavailableError`` for a language that cannot be scored on this machine (the
    suite never yields such tasks); otherwise reward 1 when every expected test passed,
    else 0 (see each ``lang_*.py`` for how, and what evidence it has).
    """

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        reason = toolchain(task.language).reason or task.hidden.get("unscorable", "")
        if reason:
            raise UnavailableError(
                f"cannot score {task.id}: {reason}",
                hint="filter the suite's tasks with PolyglotSuite.tasks() (it skips them)",
            )
        return LANGS[task.language].score(task, workspace, sandbox)


class PolyglotSuite:
    """Polyglot exercises from a checkout folder or a JSONL file, scorable languages only.

    ``languages`` restricts the suite (default: all six); ``skipped`` maps each language
    whose tasks were left out to (count, reason), ``skipped_tasks`` each other task left out
    (its build needs libraries this machine lacks) to the reason; both are logged when the
    tasks are listed.

    Example:
        suite = PolyglotSuite("polyglot-benchmark", languages=["python"])
    """

    def __init__(self, path: str | Path, languages: list[str] | None = None) -> None:
        self.path = Path(path).expanduser()
        self.name = f"polyglot:{path}"
        unknown = sorted(set(languages or ()) - set(LANGUAGES))
        if unknown:
            raise ConfigError(
                f"unknown polyglot language {unknown[0]!r}",
                hint=f"use some of: {', '.join(LANGUAGES)}",
            )
        if self.path.is_symlink() or (
            self.path.exists() and not (self.path.is_dir() or self.path.is_file())
        ):
            raise ConfigError(
                f"polyglot path {self.path} is a symlink or a special file: refusing it",
                hint="give the checkout folder or the JSONL file itself",
            )
        if self.path.is_dir():
            exercises = read_checkout(self.path)
        elif self.path.is_file():
            exercises = read_jsonl(self.path)
        else:
            raise ConfigError(
                f"polyglot path {self.path} does not exist",
                hint="give polyglot:PATH: a polyglot-benchmark checkout or a polyglot JSONL file",
            )
        wanted = set(languages or LANGUAGES)
        self._exercises = [e for e in exercises if e.language in wanted]
        self.skipped: dict[str, tuple[int, str]] = {}
        #: exercises of a scorable language whose build needs libraries we lack: id -> why
        self.skipped_tasks: dict[str, str] = {}
        self._logged = False
        for exercise in self._exercises:
            reason = toolchain(exercise.language).reason
            if reason:
                count = self.skipped.get(exercise.language, (0, reason))[0]
                self.skipped[exercise.language] = (count + 1, reason)
            elif why := unscorable(exercise):
                self.skipped_tasks[f"polyglot/{exercise.language}/{exercise.name}"] = why

    def languages_supported(self) -> dict[str, str]:
        """Every Polyglot language -> ``""`` if it can be scored here, else the reason."""
        return languages_supported()

    def all_tasks(self) -> Iterator[Task]:
        """Every task, scorable here or not (for inspection; ``tasks`` is what runs)."""
        for exercise in self._exercises:
            yield make_task(exercise, self.name)

    def tasks(self) -> Iterator[Task]:
        """The tasks whose language can be scored here; the others are logged and skipped."""
        if not self._logged:  # once per suite, not on every listing
            self._logged = True
            for language, (count, reason) in sorted(self.skipped.items()):
                log.warning("polyglot: skipping %d %s task(s): %s", count, language, reason)
            for task_id, reason in sorted(self.skipped_tasks.items()):
                log.warning("polyglot: skipping %s: %s", task_id, reason)
        for exercise in self._exercises:
            task = make_task(exercise, self.name)
            if not task.hidden["unscorable"]:
                yield task

    def scorer(self) -> PolyglotScorer:
        return PolyglotScorer()

    def limits(self) -> Limits:
        """Sandbox limits the builds need: compilers and the JVM want more memory and CPU
        seconds than a Python test, and Java's concurrency tests start hundreds of threads."""
        return Limits(wall_s=300, cpu_s=600, memory_mb=2048, pids=4096)

    def ro_binds(self) -> list[str]:
        """Host paths the scoring sandboxes need bound read-only (toolchains outside /usr)."""
        binds: set[str] = set()
        for language in {e.language for e in self._exercises}:
            binds.update(toolchain(language).ro_binds)
        return sorted(binds)
