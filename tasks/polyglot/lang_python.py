"""Polyglot Python: the exercises' ``unittest`` tests, run by the Python judge.

The test modules run in the judge's process, in a second fresh sandbox (the exercises come
from a user's checkout, not with exapt); the solution's modules are proxies to its own
sandbox, where ``serve.py`` imports them. Classes and objects cross by handle (a test
builds the solution's objects and calls their methods), exceptions as their builtin class
or a mirror of the solution's own class, so ``assertRaises`` works; a test's objects handed
to the solution (callbacks, mocks) are served back to it, read-only. Patching ``unittest``
from the solution module, shadowing a module or exiting changes nothing here: none of the
solution's code runs in the judge's process. Evidence ``judge``.

Expected tests: every ``test*`` method of the classes in the task's ``*_test.py`` modules,
counted on the host from their syntax tree, as ``module.Class.method`` ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from exapt.errors import ExaptError
from exapt.records import Score, Task
from exapt.tasks.base import SandboxFactory
from exapt.tasks.command import broken
from exapt.tasks.polyglot.base import Exercise, Toolchain
from exapt.tasks.pyjudge import judge, module_names, unittest_ids
from exapt.tasks.verdict import failed, from_python


def _module(path: str) -> str:
    return PurePosixPath(path).with_suffix("").as_posix().replace("/", ".")


def test_modules(tests: Mapping[str, str]) -> list[str]:
    """The modules of the task's tests that hold tests (``*_test.py``; ``test_utils.py``
    is a helper)."""
    return sorted(_module(p) for p in tests if p.endswith("_test.py"))


def expected_ids(tests: Mapping[str, str]) -> list[str]:
    """``module.Class.method`` of every test method the task's test modules define."""
    sources = {_module(p): text for p, text in tests.items() if p.endswith(".py")}
    return unittest_ids(sources, test_modules(tests))


def _command(exercise: Exercise) -> str:
    # informational: what the judge runs (the tests are never run by a shell command)
    return "exapt python judge: unittest " + " ".join(test_modules(exercise.test_files))


class PythonLanguage:
    name = "python"

    def toolchain(self) -> Toolchain:
        if not Path("/usr/bin/python3").exists():
            return Toolchain(
                "python", "/usr/bin/python3 is not installed (apt-get install python3)"
            )
        return Toolchain("python", "", _command, timeout_s=120.0, drop_dirs=("__pycache__",))

    def keeps(self, path: str, task: Task) -> bool:
        # everything but build output: the solution's process is untrusted anyway
        return path.split("/", 1)[0] != "__pycache__" and path not in task.hidden.get("tests", {})

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        started = time.monotonic()
        tests: dict[str, str] = task.hidden["tests"]
        timeout_s = float(task.hidden.get("timeout_s") or 120.0)
        solution = {p: d for p, d in workspace.items() if self.keeps(p, task)}
        test_names = {_module(p) for p in tests if p.endswith(".py")}
        spec = {
            "mode": "unittest",
            "sources": {_module(p): text for p, text in tests.items() if p.endswith(".py")},
            "run": test_modules(tests),
            "solution_modules": module_names(solution, exclude=test_names),
        }
        try:
            verdict = judge(spec, dict(solution), sandbox, timeout_s=timeout_s)
        except (ExaptError, OSError) as exc:
            return broken(exc, started)
        expected = expected_ids(tests)
        if not expected:
            return failed("no_tests", "the task has no tests to run", started)
        return from_python(verdict, expected, started, timeout_s=timeout_s)


LANGUAGE = PythonLanguage()
