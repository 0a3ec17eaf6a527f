"""Polyglot: Aider's benchmark of Exercism exercises in six languages (``polyglot:PATH``).

``PATH`` is either a checkout of the Aider-AI/polyglot-benchmark repository (exercises at
``<language>/exercises/practice/<name>/`` with ``.docs/instructions*.md`` and
``.meta/config.json`` naming ``files.solution``, ``files.test``, ``files.example``) or a
JSONL file with one exercise a line (fields ``id``, ``language``, ``name``, ``instructions``,
``solution_files``, ``test_files``, ``support_files``, ``reference_files``).

A task's workspace holds the solution stubs and the support files the build needs; its
``hidden`` part holds the tests (copied in only when scoring), the build files to restore
over the agent's copy, the test command, and the reference solution (for harness checks,
never shown to the agent).

Which languages can be scored depends on the toolchains of this machine (``toolchain``):
tasks of a language that cannot be scored are skipped with a logged reason, never scored 0.
On the development machine (Debian 12) these score: python (unittest: Debian's python3 has
no pytest; the exercises' tests are unittest classes), cpp (cmake + g++ with the bundled
Catch), rust (cargo from rustup, bound read-only, offline: the stubs need no crates),
javascript (node, with ``exapt.tasks.minijest`` standing in for jest, which is not installed
and cannot be fetched offline) and java (javac + Debian's JUnit 5 console launcher and AssertJ,
packages ``junit5`` and ``libassertj-core-java``, instead of the benchmark's Gradle build,
whose wrapper jar is left out and which cannot fetch dependencies offline). go is not
installed here; it is scored when ``go`` is on PATH (that path is untested).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from exapt.errors import ConfigError, UnavailableError
from exapt.sandbox.base import Limits
from exapt.tasks import minijest
from exapt.tasks.base import SandboxFactory, Score, Task
from exapt.tasks.command import CommandScorer

log = logging.getLogger(__name__)

LANGUAGES: tuple[str, ...] = ("cpp", "go", "java", "javascript", "python", "rust")

INSTRUCTION = """\
{instructions}

# Your task

Use the instructions above to modify the supplied files: {solution_files}.
Don't change the names of existing functions, classes or types: hidden unit tests use them.
Only use the standard library of the language; don't install packages (there is no network).
Don't edit the build files ({support_files}); they are restored before the tests run.
"""

# Folders of an exercise that hold spoilers (approaches, articles, the example solution) or
# metadata: never part of the agent's workspace.
_SPOILER_DIRS = frozenset({".meta", ".docs", ".approaches", ".articles"})


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


def _python_command(exercise: Exercise) -> str:
    # unittest, not pytest: Debian's /usr/bin/python3 (what the sandbox has) lacks pytest, and
    # every Python exercise's tests are unittest.TestCase classes. Helper files such as
    # paasio's test_utils.py are test files but not test modules.
    modules = sorted(
        PurePosixPath(path).with_suffix("").as_posix().replace("/", ".")
        for path in exercise.test_files
        if path.endswith("_test.py")
    )
    return "python3 -m unittest -v " + " ".join(modules)


def _cpp_command(exercise: Exercise) -> str:
    # The exercise's CMakeLists.txt names the target and source after its folder, so the
    # build runs in a copy named after the exercise; the build's custom target runs the tests.
    src = f"/tmp/ex/{exercise.name}"
    return (
        f"set -e; rm -rf /tmp/ex; mkdir -p {src}; cp -r /workspace/. {src}/; "
        f"cmake -S {src} -B /tmp/ex/build -DEXERCISM_RUN_ALL_TESTS=1 > /tmp/ex/cmake.log "
        "|| { cat /tmp/ex/cmake.log; exit 1; }; "
        "cmake --build /tmp/ex/build -- -j2 2>&1"
    )


def _rust_command(_exercise: Exercise) -> str:
    # --include-ignored: Exercism marks all but the first test #[ignore].
    return "cargo test --offline --quiet -- --include-ignored 2>&1"


def _javascript_command(exercise: Exercise) -> str:
    return minijest.command([p for p in exercise.test_files if p.endswith(".js")])


def _go_command(_exercise: Exercise) -> str:
    return "go test ./... 2>&1"


#: Debian's JUnit 5 and AssertJ jars (packages junit5, libassertj-core-java): the exercises'
#: build.gradle wants Gradle, whose wrapper jar the benchmark leaves out and which could not
#: fetch its dependencies offline anyway, so we compile and run the tests directly.
_JAVA_JARS = tuple(
    f"/usr/share/java/{name}.jar"
    for name in (
        "junit-jupiter-api",
        "junit-jupiter-params",
        "assertj-core",
        "apiguardian-api",
        "opentest4j",
    )
)
_JUNIT_CONSOLE = "/usr/share/java/junit-platform-console-standalone.jar"
# Modest JVM reservations, so the JVM also starts where memory is limited by rlimits.
_JVM_FLAGS = "-Xmx512m -XX:ReservedCodeCacheSize=64m -XX:CompressedClassSpaceSize=64m"


def _java_command(_exercise: Exercise) -> str:
    # Exercism disables all tests but the first with @Disabled; the benchmark runs them all.
    classpath = ":".join(_JAVA_JARS)
    javac_flags = " ".join(f"-J{flag}" for flag in _JVM_FLAGS.split())
    return (
        "set -e; rm -rf /tmp/j; mkdir -p /tmp/j/classes /tmp/j/src; cp -r src /tmp/j/src/; "
        "find /tmp/j/src -path '*/test/*' -name '*.java' "
        "-exec sed -i 's/@Disabled([^)]*)//; s/@Disabled//' {} +; "
        f"javac {javac_flags} -nowarn -encoding UTF-8 -d /tmp/j/classes -cp {classpath} "
        "$(find /tmp/j/src -name '*.java') 2>&1; "
        "status=0; "
        f"java {_JVM_FLAGS} -jar {_JUNIT_CONSOLE} --disable-banner --disable-ansi-colors "
        "--details=tree --details-theme=ascii --fail-if-no-tests "
        f"-cp /tmp/j/classes:{classpath} --scan-classpath /tmp/j/classes "
        "> /tmp/j/out.txt 2>&1 || status=$?; "
        # the framework's own stack frames crowd out the failures' messages in the feedback
        r"grep -v -E '^\s+(org\.junit\.|java\.base/|\[\.\.\.\])' /tmp/j/out.txt || true; "
        "exit $status"
    )


def _java_toolchain() -> Toolchain:
    needed = ("/usr/bin/javac", "/usr/bin/java", _JUNIT_CONSOLE, *_JAVA_JARS)
    missing = [path for path in needed if not Path(path).exists()]
    if missing:
        return Toolchain(
            "java",
            f"{', '.join(missing)} missing: apt-get install default-jdk junit5 "
            "libassertj-core-java (the benchmark's Gradle wrapper jar is left out, and nothing "
            "can be fetched offline)",
        )
    return Toolchain(
        "java", "", _java_command, timeout_s=300.0, env={"HOME": "/tmp"}, drop_dirs=("build",)
    )


def _which(name: str) -> str | None:
    found = shutil.which(name)
    return str(Path(found).resolve()) if found else None


def _rust_toolchain() -> Toolchain:
    # not resolved: rustup's proxies are symlinks that dispatch on their own name
    rustc = shutil.which("rustc") or str(Path.home() / ".cargo/bin/rustc")
    if not Path(rustc).exists():
        return Toolchain("rust", "rustc/cargo not found (install rustup or Debian's cargo)")
    try:
        sysroot = subprocess.run(
            [rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Toolchain("rust", f"rustc does not run: {exc}")
    bin_dir = Path(sysroot) / "bin"
    if not (bin_dir / "cargo").exists():
        return Toolchain("rust", f"no cargo beside rustc in {bin_dir}")
    # Use the toolchain's own binaries (not rustup's proxies, which want a writable
    # RUSTUP_HOME), bound read-only; cargo's home and build output go to the private /tmp.
    binds = () if sysroot.startswith("/usr/") else (sysroot,)
    return Toolchain(
        "rust",
        "",
        _rust_command,
        timeout_s=300.0,
        env={
            "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "RUSTC": str(bin_dir / "rustc"),
            "CARGO_HOME": "/tmp/cargo-home",
            "CARGO_TARGET_DIR": "/tmp/target",
            "CARGO_NET_OFFLINE": "true",
            "CARGO_TERM_COLOR": "never",
            "HOME": "/tmp",
        },
        ro_binds=binds,
        drop_dirs=("target",),
    )


def _go_toolchain() -> Toolchain:
    go = _which("go")
    if go is None:
        return Toolchain("go", "the go toolchain is not installed (apt-get install golang-go)")
    goroot = str(Path(go).parent.parent)
    return Toolchain(
        "go",
        "",
        _go_command,
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


@cache
def toolchain(language: str) -> Toolchain:
    """The toolchain of ``language`` on this machine (cached per process).

    Checks what the sandbox will find: it binds the host's /usr read-only, so a tool in /usr
    is available as is; a toolchain elsewhere (rustup's) is bound read-only via ``ro_binds``.
    """
    if language == "python":
        if not Path("/usr/bin/python3").exists():
            return Toolchain(
                "python", "/usr/bin/python3 is not installed (apt-get install python3)"
            )
        return Toolchain("python", "", _python_command, timeout_s=120.0, drop_dirs=("__pycache__",))
    if language == "cpp":
        missing = [
            tool for tool in ("cmake", "make", "g++") if not Path(f"/usr/bin/{tool}").exists()
        ]
        if missing:
            return Toolchain("cpp", f"{', '.join(missing)} not installed in /usr/bin")
        return Toolchain("cpp", "", _cpp_command, timeout_s=300.0, drop_dirs=("build",))
    if language == "rust":
        return _rust_toolchain()
    if language == "go":
        return _go_toolchain()
    if language == "javascript":
        # jest itself is not installed and cannot be fetched offline: exapt.tasks.minijest
        # runs the exercises' jest tests with plain node.
        if not Path("/usr/bin/node").exists():
            return Toolchain(
                "javascript", "node is not installed in /usr/bin (apt-get install nodejs)"
            )
        return Toolchain(
            "javascript",
            "",
            _javascript_command,
            timeout_s=120.0,
            env={"HOME": "/tmp", "NODE_OPTIONS": ""},
            drop_dirs=("node_modules",),
            harness_files=dict(minijest.FILES),
        )
    if language == "java":
        return _java_toolchain()
    return Toolchain(language, f"unknown language {language!r} (known: {', '.join(LANGUAGES)})")


def languages_supported() -> dict[str, str]:
    """Every Polyglot language -> ``""`` if it can be scored on this machine, else why not."""
    return {language: toolchain(language).reason for language in LANGUAGES}


# ------------------------------------------------------------------------------ loading


def _text_files(root: Path, skip: set[str]) -> dict[str, str]:
    """Text files under ``root`` (relative POSIX path -> text), minus spoiler folders, ``skip``
    and binary files (the gradle wrapper jar)."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel in skip or rel.split("/", 1)[0] in _SPOILER_DIRS:
            continue
        try:
            files[rel] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return files


def _read_exercise(folder: Path, language: str) -> Exercise:
    config_path = folder / ".meta" / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        names: dict[str, list[str]] = config["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{config_path}: cannot read files.solution/test/example ({exc})",
            hint="PATH must be a checkout of Aider-AI/polyglot-benchmark",
        ) from exc

    def read(paths: list[str]) -> dict[str, str]:
        return {
            p: (folder / p).read_text(encoding="utf-8") for p in paths if (folder / p).is_file()
        }

    docs = folder / ".docs"
    parts = [
        docs / "introduction.md",
        docs / "instructions.md",
        docs / "introduction.append.md",
        docs / "instructions.append.md",
    ]
    instructions = "\n\n".join(p.read_text(encoding="utf-8").strip() for p in parts if p.is_file())
    solution = read(names.get("solution", []))
    tests = read(names.get("test", []))
    return Exercise(
        language=language,
        name=folder.name,
        instructions=instructions,
        solution_files=solution,
        test_files=tests,
        support_files=_text_files(folder, set(solution) | set(tests)),
        reference_files=read(names.get("example", [])),
        source=str(folder),
    )


def read_checkout(root: Path) -> list[Exercise]:
    """Every exercise of a polyglot-benchmark checkout, by language then name."""
    exercises: list[Exercise] = []
    for language in LANGUAGES:
        practice = root / language / "exercises" / "practice"
        if practice.is_dir():
            for folder in sorted(p for p in practice.iterdir() if p.is_dir()):
                exercises.append(_read_exercise(folder, language))
    if not exercises:
        raise ConfigError(
            f"{root} holds no exercises (<language>/exercises/practice/<name>/)",
            hint="PATH must be a checkout of Aider-AI/polyglot-benchmark or a polyglot JSONL file",
        )
    return exercises


_JSONL_FIELDS = ("language", "name", "instructions", "solution_files", "test_files")


def read_jsonl(path: Path) -> list[Exercise]:
    """Every exercise of a polyglot JSONL file; ``ConfigError`` naming file:line if malformed."""
    exercises: list[Exercise] = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{line_no}: expected a JSON object")
            for name in _JSONL_FIELDS:
                if name not in row:
                    raise ConfigError(
                        f"{path}:{line_no}: field {name!r} is missing",
                        hint="see ../shared/datasets/README.md for the polyglot JSONL format",
                    )
            for name in ("solution_files", "test_files", "support_files", "reference_files"):
                if not isinstance(row.get(name, {}), dict):
                    raise ConfigError(f"{path}:{line_no}: field {name!r} must be an object")
            exercises.append(
                Exercise(
                    language=row["language"],
                    name=row["name"],
                    instructions=row["instructions"],
                    solution_files=row["solution_files"],
                    test_files=row["test_files"],
                    support_files=row.get("support_files", {}),
                    reference_files=row.get("reference_files", {}),
                    source=row.get("source", f"{path}:{line_no}"),
                )
            )
    return exercises


def reference_solution(exercise: Exercise) -> dict[str, str]:
    """The example solution mapped onto the stub paths it replaces.

    A reference file replaces the stub of the same file name (``Poker.java``); else the one
    stub with its suffix that no other reference file names (``.meta/example.py`` -> the
    ``.py`` stub, ``.meta/example.rs`` -> ``src/lib.rs``); else it is a helper of its own
    (Java's ``Frame.java``) and goes beside the stubs with its suffix.
    """
    stubs = [PurePosixPath(p) for p in exercise.solution_files]
    refs = [PurePosixPath(p) for p in exercise.reference_files]
    ref_names = {ref.name for ref in refs}
    mapped: dict[str, str] = {}
    for ref in refs:
        text = exercise.reference_files[ref.as_posix()]
        same_name = [stub for stub in stubs if stub.name == ref.name]
        free = [stub for stub in stubs if stub.suffix == ref.suffix and stub.name not in ref_names]
        beside = [stub for stub in stubs if stub.suffix == ref.suffix]
        if len(same_name) == 1:
            mapped[same_name[0].as_posix()] = text
        elif len(free) == 1 and free[0].as_posix() not in mapped:
            mapped[free[0].as_posix()] = text
        elif beside:
            mapped[(beside[0].parent / ref.name).as_posix()] = text
    return mapped


_GRADLE_DEP = re.compile(
    r"^\s*(implementation|compile|api|runtimeOnly|testImplementation)\s*\(?\s*[\"']([^\"']+)[\"']",
    re.MULTILINE,
)


_CMAKE_PACKAGE = re.compile(r"find_package\(\s*(\w+)[^)]*\bREQUIRED\b")


def missing_dependencies(exercise: Exercise) -> list[str]:
    """Libraries the exercise's build declares beyond what the toolchain brings (JUnit 5 and
    AssertJ for Java, the standard library elsewhere) and this machine lacks (a C++ package
    counts as present when its headers are in /usr/include): they cannot be fetched offline,
    so its tests cannot build here whatever the solution does."""
    files = {**exercise.support_files, **exercise.solution_files}
    found: list[str] = []
    if exercise.language == "java" and "build.gradle" in files:
        for _, coordinate in _GRADLE_DEP.findall(files["build.gradle"]):
            if not coordinate.startswith(("org.junit", "org.assertj")):
                found.append(coordinate)
    elif exercise.language == "cpp" and "CMakeLists.txt" in files:
        # Catch2 is only looked for in Exercism's own CI mode (the bundled copy is used here);
        # Threads is the C library's pthreads, always there
        for package in _CMAKE_PACKAGE.findall(files["CMakeLists.txt"]):
            if package in ("Catch2", "Threads"):
                continue
            if not Path(f"/usr/include/{package.lower()}").is_dir():
                found.append(f"{package} (its development headers)")
    elif exercise.language == "rust" and "Cargo.toml" in files:
        section = files["Cargo.toml"].partition("[dependencies]")[2].split("\n[", 1)[0]
        found += [line.split("=")[0].strip() for line in section.splitlines() if "=" in line]
    elif exercise.language == "javascript" and "package.json" in files:
        with contextlib.suppress(ValueError):  # a broken package.json fails in the build
            found += sorted(json.loads(files["package.json"]).get("dependencies") or {})
    return found


def make_task(exercise: Exercise, suite: str) -> Task:
    """The ``Task`` of one exercise (any language; scoring needs a working toolchain)."""
    chain = toolchain(exercise.language)
    support = {
        path: text
        for path, text in exercise.support_files.items()
        if path.split("/", 1)[0] not in _SPOILER_DIRS
    }
    solution_names = ", ".join(f"`{p}`" for p in exercise.solution_files) or "the files"
    support_names = ", ".join(f"`{p}`" for p in support) or "none"
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
            "restore": {**support, **chain.harness_files},
            "test_command": chain.command(exercise) if chain.command else "",
            "timeout_s": chain.timeout_s,
            "env": dict(chain.env),
            "drop_dirs": list(chain.drop_dirs),
            "reference": reference_solution(exercise),
            "unscorable": _unscorable(exercise),
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


#: Exercises whose tests cannot compile against what this machine has, found by running the
#: reference solutions (the shared sample; a full checkout may hold more: they show up as a
#: reference that fails, see tests/tasks/test_polyglot.py).
KNOWN_UNSCORABLE: dict[str, str] = {
    "java/mazy-mice": "its tests use AssertJ's hasDimensions, newer than Debian's AssertJ 3.14",
}


def _unscorable(exercise: Exercise) -> str:
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
    """Runs the exercise's tests with its language's toolchain in a fresh sandbox.

    Raises ``UnavailableError`` for a language that cannot be scored on this machine (the
    suite never yields such tasks); otherwise reward 1 when every test passed, else 0.
    """

    def __init__(self) -> None:
        self._command = CommandScorer()

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        reason = toolchain(task.language).reason or task.hidden.get("unscorable", "")
        if reason:
            raise UnavailableError(
                f"cannot score {task.id}: {reason}",
                hint="filter the suite's tasks with PolyglotSuite.tasks() (it skips them)",
            )
        return self._command.score(task, workspace, sandbox)


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
            elif why := _unscorable(exercise):
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
