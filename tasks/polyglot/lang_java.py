"""Polyglot Java: javac + Debian's JUnit 5 console launcher and AssertJ, its XML report.

The exercises' ``build.gradle`` wants Gradle, whose wrapper jar the benchmark leaves out and
which could not fetch its dependencies offline, so the tests are compiled and run directly
(packages ``junit5``, ``libassertj-core-java``). Only ``src/main/java/**/*.java`` of the
workspace enters; the tests are the task's, with ``@Disabled`` removed (the benchmark runs
them all). JUnit writes ``.exapt/TEST-junit-jupiter.xml``; expected: the methods annotated
``@Test`` (or parameterized, repeated) in the task's test files, each seen passing (every
invocation of a parameterized one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import defusedxml.ElementTree as SafeET

from exapt.records import Task
from exapt.tasks.polyglot.base import REPORT_DIR, Exercise, ReportLanguage, Toolchain, count_calls
from exapt.tasks.verdict import Seen

#: Debian's JUnit 5 and AssertJ jars (packages junit5, libassertj-core-java).
JARS = tuple(
    f"/usr/share/java/{name}.jar"
    for name in (
        "junit-jupiter-api",
        "junit-jupiter-params",
        "assertj-core",
        "apiguardian-api",
        "opentest4j",
    )
)
JUNIT_CONSOLE = "/usr/share/java/junit-platform-console-standalone.jar"
# Modest JVM reservations, so the JVM also starts where memory is limited by rlimits.
_JVM_FLAGS = "-Xmx512m -XX:ReservedCodeCacheSize=64m -XX:CompressedClassSpaceSize=64m"
_TEST = re.compile(
    r"@(?:Test|ParameterizedTest|RepeatedTest|TestFactory)\b(?:\([^)]*\))?"
    r"(?:\s*@\w+(?:\([^)]*\))?)*\s*(?:public\s+|protected\s+|private\s+)?"
    r"(?:static\s+)?(?:final\s+)?[\w<>\[\], ?]+\s+(\w+)\s*\("
)


def _command(_exercise: Exercise) -> str:
    classpath = ":".join(JARS)
    javac_flags = " ".join(f"-J{flag}" for flag in _JVM_FLAGS.split())
    return (
        f"set -e; rm -rf /tmp/j {REPORT_DIR}; mkdir -p /tmp/j/classes /tmp/j/src {REPORT_DIR}; "
        "cp -r src /tmp/j/src/; "
        "find /tmp/j/src -path '*/test/*' -name '*.java' "
        "-exec sed -i 's/@Disabled([^)]*)//; s/@Disabled//' {} +; "
        f"javac {javac_flags} -nowarn -encoding UTF-8 -d /tmp/j/classes -cp {classpath} "
        "$(find /tmp/j/src -name '*.java') 2>&1; "
        f"java {_JVM_FLAGS} -jar {JUNIT_CONSOLE} --disable-banner --disable-ansi-colors "
        "--details=none --fail-if-no-tests "
        f"--reports-dir=/workspace/{REPORT_DIR} "
        f"-cp /tmp/j/classes:{classpath} --scan-classpath /tmp/j/classes 2>&1"
    )


class JavaLanguage(ReportLanguage):
    name = "java"
    report = "TEST-junit-jupiter.xml"

    def toolchain(self) -> Toolchain:
        needed = ("/usr/bin/javac", "/usr/bin/java", JUNIT_CONSOLE, *JARS)
        missing = [path for path in needed if not Path(path).exists()]
        if missing:
            return Toolchain(
                "java",
                f"{', '.join(missing)} missing: apt-get install default-jdk junit5 "
                "libassertj-core-java (the benchmark's Gradle wrapper jar is left out, and "
                "nothing can be fetched offline)",
            )
        return Toolchain(
            "java", "", _command, timeout_s=300.0, env={"HOME": "/tmp"}, drop_dirs=("build",)
        )

    def keeps(self, path: str, task: Task) -> bool:
        return path.startswith("src/main/java/") and path.endswith(".java")

    def expected(self, tests: Mapping[str, str]) -> list[str]:
        names: list[str] = []
        for path, text in tests.items():
            if path.endswith(".java"):
                names += count_calls(_TEST, text)
        return sorted(set(names))

    def parse(self, data: bytes) -> Seen:
        root = SafeET.fromstring(data)
        outcomes: dict[str, tuple[str, str, bool]] = {}
        for case in root.iter("testcase"):
            name = case.get("name", "").split("(", 1)[0]
            if case.find("failure") is not None:
                outcome = "fail"
            elif case.find("error") is not None:
                outcome = "error"
            elif case.find("skipped") is not None:
                outcome = "skip"
            else:
                outcome = "pass"
            if outcomes.get(name, ("pass",))[0] == "pass":  # one failing invocation decides
                outcomes[name] = (outcome, "", False)
        return Seen(outcomes)


LANGUAGE = JavaLanguage()
