"""Reading Polyglot exercises: a checkout of the benchmark repository, or a JSONL of them.

A checkout's files are read without following a symlink: a symlink or a special file (FIFO,
device, socket) anywhere in an exercise is refused with a ``ConfigError`` naming it, so a
crafted checkout cannot pull host files (``/etc/shadow``) into an agent's workspace. Every
path of an exercise, from a checkout or a JSONL line, must be relative and stay inside the
workspace (no ``..``, not absolute).
"""

from __future__ import annotations

import contextlib
import json
import re
import stat
from pathlib import Path, PurePosixPath

from exapt.errors import ConfigError
from exapt.tasks.polyglot.base import SPOILER_DIRS, Exercise

LANGUAGES: tuple[str, ...] = ("cpp", "go", "java", "javascript", "python", "rust")


def check_path(name: object, where: str) -> str:
    """``name`` if it is a relative path inside the workspace, else ``ConfigError``."""
    rel = PurePosixPath(str(name))
    if not isinstance(name, str) or not name or rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(
            f"{where}: path {name!r} must be relative and inside the workspace",
            hint="task files are workspace paths such as src/lib.rs (no '..', not absolute)",
        )
    return name


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: object, where: str) -> str:
    """An exercise's name (it names a folder and a build target): letters, digits, _.-"""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"{where}: exercise name {name!r} is not a plain name",
            hint="use letters, digits, '_', '-' and '.' (like Exercism's folder names)",
        )
    return name


def _refuse_links(root: Path) -> None:
    """``ConfigError`` for the first symlink or special file under ``root`` (or ``root``)."""
    stack = [root]
    while stack:
        path = stack.pop()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            raise ConfigError(
                f"{path} is a symlink: refusing to follow it into a task",
                hint="a Polyglot checkout holds plain files only; replace the link by a copy",
            )
        if stat.S_ISDIR(st.st_mode):
            stack.extend(path.iterdir())
        elif not stat.S_ISREG(st.st_mode):
            raise ConfigError(
                f"{path} is not a regular file (a FIFO, device or socket): refusing it",
                hint="a Polyglot checkout holds plain files only",
            )


def _text_files(root: Path, skip: set[str]) -> dict[str, str]:
    """Text files under ``root`` (relative POSIX path -> text), minus spoiler folders, ``skip``
    and binary files (the gradle wrapper jar)."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel in skip or rel.split("/", 1)[0] in SPOILER_DIRS:
            continue
        try:
            files[rel] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return files


def _read_exercise(folder: Path, language: str) -> Exercise:
    _refuse_links(folder)
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
        for p in paths:
            check_path(p, str(config_path))
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
        name=check_name(folder.name, str(folder)),
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
        for part in (root / language, root / language / "exercises", practice):
            if part.is_symlink():
                raise ConfigError(f"{part} is a symlink: refusing to follow it into a task")
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
                for rel, text in row.get(name, {}).items():
                    check_path(rel, f"{path}:{line_no}: field {name!r}")
                    if not isinstance(text, str):
                        raise ConfigError(
                            f"{path}:{line_no}: field {name!r}: content of {rel!r} must be text"
                        )
            exercises.append(
                Exercise(
                    language=row["language"],
                    name=check_name(row["name"], f"{path}:{line_no}: field 'name'"),
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
