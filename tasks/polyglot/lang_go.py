"""Polyglot Go: ``go test -json``, scored when ``go`` is on PATH (not on the development
machine: this path is untested there).

Only the workspace's ``*.go`` sources (no ``_test.go`` of its own: a ``TestMain`` could
replace the tests) enter; ``go.mod`` and the tests are the task's. Expected: the top-level
``func TestX(t *testing.T)`` of the task's test files, each seen passing in the report.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from exapt.records import Task
from exapt.tasks.polyglot.base import REPORT_DIR, Exercise, ReportLanguage, Toolchain, count_calls
from exapt.tasks.verdict import Seen

_TEST_FN = re.compile(r"^func\s+(Test\w*)\s*\(\s*\w+\s+\*testing\.T\s*\)", re.MULTILINE)


def _command(_exercise: Exercise) -> str:
    return (
        f"rm -rf {REPORT_DIR}; mkdir -p {REPORT_DIR}; "
        f"go test -json -count=1 . > {REPORT_DIR}/report.jsonl 2>&1"
    )


class GoLanguage(ReportLanguage):
    name = "go"
    report = "report.jsonl"

    def toolchain(self) -> Toolchain:
        found = shutil.which("go")
        if found is None:
            return Toolchain("go", "the go toolchain is not installed (apt-get install golang-go)")
        go = str(Path(found).resolve())
        goroot = str(Path(go).parent.parent)
        return Toolchain(
            "go",
            "",
            _command,
            timeout_s=300.0,
            env={
                "PATH": f"{Path(go).parent}:/usr/local/bin:/usr/bin:/bin",
                "GOCACHE": "/tmp/go-cache",
                "GOPATH": "/tmp/go",
                "GOFLAGS": "-mod=mod",
                "GOTOOLCHAIN": "local",
                "GOPROXY": "off",
                "HOME": "/tmp",
            },
            ro_binds=() if goroot.startswith("/usr/") else (goroot,),
        )

    def keeps(self, path: str, task: Task) -> bool:
        p = PurePosixPath(path)
        return len(p.parts) == 1 and p.suffix == ".go" and not p.name.endswith("_test.go")

    def expected(self, tests: Mapping[str, str]) -> list[str]:
        names: list[str] = []
        for path, text in tests.items():
            if path.endswith("_test.go"):
                names += count_calls(_TEST_FN, text)
        return names

    def parse(self, data: bytes) -> Seen:
        outcomes: dict[str, tuple[str, str, bool]] = {}
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            test = event.get("Test") if isinstance(event, dict) else None
            if not test or "/" in str(test):
                continue  # package lines, subtests
            action = event.get("Action")
            if action in ("pass", "fail", "skip"):
                outcomes[str(test)] = (
                    {"pass": "pass", "fail": "fail"}.get(action, "skip"),
                    "",
                    False,
                )
        return Seen(outcomes)


LANGUAGE = GoLanguage()
