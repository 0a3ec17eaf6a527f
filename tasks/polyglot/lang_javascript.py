"""Polyglot JavaScript: jest itself (29.7, with babel-jest and Exercism's babel preset, as the
exercises' own package.json asks), installed from npm by ``scripts/setup.sh`` into a
toolchain folder that the scoring sandbox binds read-only (as rustup's toolchain is).

Where jest lives: ``$EXAPT_JEST_HOME``, else ``<checkout>/.toolchains/jest`` (a folder
holding ``node_modules/jest``). In the sandbox, ``node_modules`` is a symlink to the
toolchain's; the workspace's own ``node_modules``, ``package.json``, babel and jest
configuration never enter (the task's are restored), only its ``.js`` sources. Tests
marked ``xtest``/``xit`` run too (the benchmark runs every test, as Aider's harness does).
jest writes its ``--json`` report to ``.exapt/report.json``; expected: the number of
``test(``/``it(`` calls in the task's spec files (jest names are computed strings).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from exapt.records import Task
from exapt.tasks.polyglot.base import REPORT_DIR, Exercise, ReportLanguage, Toolchain, count_calls
from exapt.tasks.verdict import Seen

_CALL = re.compile(r"(?<![\w.$])(?:test|it)\s*\(")
_X = re.compile(r"(?<![\w.$])x(test|it|describe)\s*\(")
#: configuration a workspace may not bring (jest and babel would read it)
_CONFIG = re.compile(r"^(babel\.config|jest\.config|\.babelrc)|\.config\.[cm]?js$")
JEST_VERSION = "29.7.0"


def jest_home() -> Path:
    """The toolchain folder holding ``node_modules/jest`` (see module doc)."""
    env = os.environ.get("EXAPT_JEST_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".toolchains" / "jest"


def _command(exercise: Exercise) -> str:
    home = jest_home()
    specs = " ".join(shlex.quote(p) for p in sorted(exercise.test_files) if p.endswith(".js"))
    return (
        f"rm -rf {REPORT_DIR} node_modules; mkdir -p {REPORT_DIR}; "
        f"ln -s {shlex.quote(str(home / 'node_modules'))} node_modules; "
        f"node {shlex.quote(str(home / 'node_modules/jest/bin/jest.js'))} --ci --no-watchman "
        f"--rootDir /workspace --json --outputFile={REPORT_DIR}/report.json {specs} 2>&1"
    )


class JavascriptLanguage(ReportLanguage):
    name = "javascript"
    report = "report.json"
    by_count = True

    def toolchain(self) -> Toolchain:
        if not Path("/usr/bin/node").exists():
            return Toolchain(
                "javascript", "node is not installed in /usr/bin (apt-get install nodejs)"
            )
        home = jest_home()
        if not (home / "node_modules" / "jest" / "bin" / "jest.js").exists():
            return Toolchain(
                "javascript",
                f"jest is not installed in {home}: run scripts/setup.sh (npm install jest@"
                f"{JEST_VERSION} there) or set EXAPT_JEST_HOME",
            )
        return Toolchain(
            "javascript",
            "",
            _command,
            timeout_s=180.0,
            env={"HOME": "/tmp", "NODE_OPTIONS": "", "CI": "true"},
            ro_binds=(str(home),),
            drop_dirs=("node_modules",),
        )

    def keeps(self, path: str, task: Task) -> bool:
        p = PurePosixPath(path)
        return (
            p.suffix in (".js", ".mjs", ".cjs")
            and p.parts[0] != "node_modules"
            and not _CONFIG.search(p.name)
            and path not in task.hidden.get("tests", {})
            and not path.endswith((".spec.js", ".test.js"))
        )

    def prepare_tests(self, tests: Mapping[str, str]) -> dict[str, str]:
        return {path: _X.sub(r"\1(", text) for path, text in tests.items()}

    def expected(self, tests: Mapping[str, str]) -> list[str]:
        calls: list[str] = []
        for path, text in self.prepare_tests(tests).items():
            if path.endswith(".js"):
                calls += count_calls(_CALL, text)
        return calls

    def parse(self, data: bytes) -> Seen:
        report = json.loads(data)
        items = []
        for suite in report["testResults"]:
            for test in suite.get("assertionResults", []):
                status = str(test.get("status"))
                outcome = {"passed": "pass", "failed": "fail"}.get(status, "skip")
                items.append((str(test.get("fullName", "")), outcome, "", False))
        return Seen({f"{i}:{n}": (o, e, r) for i, (n, o, e, r) in enumerate(items)})


LANGUAGE = JavascriptLanguage()
