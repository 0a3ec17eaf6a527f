"""Polyglot C++: cmake + g++ with the exercise's bundled Catch2 (v2), its XML report.

Only the workspace's own C/C++ sources and headers at the top level enter the scoring
sandbox; ``CMakeLists.txt``, ``test/catch.hpp`` and ``test/tests-main.cpp`` are the task's.
The test binary is built (not the custom target that runs it), then run with Catch's XML
reporter writing ``.exapt/report.xml``. Expected: the ``TEST_CASE("name")`` names of the
task's test file (all enabled: ``EXERCISM_RUN_ALL_TESTS``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import defusedxml.ElementTree as SafeET

from exapt.records import Task
from exapt.tasks.polyglot.base import REPORT_DIR, Exercise, ReportLanguage, Toolchain, count_calls
from exapt.tasks.verdict import Seen

_TEST_CASE = re.compile(r'\bTEST_CASE\s*\(\s*"((?:[^"\\]|\\.)*)"')
_SOURCES = (".cpp", ".cc", ".h", ".hpp")


def _command(exercise: Exercise) -> str:
    # The exercise's CMakeLists.txt names the target and source after its folder, so the
    # build runs in a copy named after the exercise.
    src = f"/tmp/ex/{exercise.name}"
    report = f"/workspace/{REPORT_DIR}/report.xml"
    return (
        f"set -e; rm -rf /tmp/ex {REPORT_DIR}; mkdir -p {src} {REPORT_DIR}; "
        f"cp -r /workspace/. {src}/; rm -rf {src}/{REPORT_DIR}; "
        f"cmake -S {src} -B /tmp/ex/build -DEXERCISM_RUN_ALL_TESTS=1 > /tmp/ex/cmake.log "
        "|| { cat /tmp/ex/cmake.log; exit 1; }; "
        f"cmake --build /tmp/ex/build --target {exercise.name} -- -j2 2>&1; "
        f"/tmp/ex/build/{exercise.name} --reporter xml --out {report} --durations no"
    )


class CppLanguage(ReportLanguage):
    name = "cpp"
    report = "report.xml"

    def toolchain(self) -> Toolchain:
        missing = [t for t in ("cmake", "make", "g++") if not Path(f"/usr/bin/{t}").exists()]
        if missing:
            return Toolchain("cpp", f"{', '.join(missing)} not installed in /usr/bin")
        return Toolchain("cpp", "", _command, timeout_s=300.0, drop_dirs=("build",))

    def keeps(self, path: str, task: Task) -> bool:
        p = PurePosixPath(path)
        return (
            len(p.parts) == 1
            and p.suffix in _SOURCES
            and path not in task.hidden.get("tests", {})
            and path not in task.hidden.get("restore", {})
        )

    def expected(self, tests: Mapping[str, str]) -> list[str]:
        names: list[str] = []
        for path, text in tests.items():
            if path.endswith(".cpp"):
                names += count_calls(_TEST_CASE, text)
        return names

    def parse(self, data: bytes) -> Seen:
        root = SafeET.fromstring(data)
        items = []
        for case in root.iter("TestCase"):
            result = case.find("OverallResult")
            ok = result is not None and result.get("success") == "true"
            items.append((case.get("name", ""), "pass" if ok else "fail", "", False))
        return Seen.of(items)


LANGUAGE = CppLanguage()
