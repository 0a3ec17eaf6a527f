"""Polyglot: Aider's benchmark of Exercism exercises in six languages (``polyglot:PATH``).

``PATH`` is either a checkout of the Aider-AI/polyglot-benchmark repository (exercises at
``<language>/exercises/practice/<name>/`` with ``.docs/instructions*.md`` and
``.meta/config.json`` naming ``files.solution``, ``files.test``, ``files.example``) or a
JSONL file with one exercise a line (fields ``id``, ``language``, ``name``, ``instructions``,
``solution_files``, ``test_files``, ``support_files``, ``reference_files``).

One language per file (``lang_*.py``) behind the ``Language`` protocol (``base.py``);
reading exercises in ``load.py``; tasks, the suite and the scorer in ``suite.py``.

Which languages can be scored depends on the toolchains of this machine (``toolchain``):
tasks of a language that cannot be scored are skipped with a logged reason, never scored 0.
On the development machine (Debian 12) these score: python (the Python judge runs the
exercises' unittest tests in its own process, the solution in another), cpp (cmake + g++
with the bundled Catch, its XML report), rust (cargo from rustup, bound read-only, offline,
libtest's JSON report), javascript (jest 29 installed by scripts/setup.sh, bound read-only,
its JSON report) and java (javac + Debian's JUnit 5 console launcher and AssertJ, packages
``junit5`` and ``libassertj-core-java``, its XML report). go is not installed here; it is
scored when ``go`` is on PATH (that path is untested).
"""

from __future__ import annotations

from exapt.tasks.polyglot.base import Exercise, Language, ReportLanguage, Toolchain
from exapt.tasks.polyglot.load import (
    LANGUAGES,
    missing_dependencies,
    read_checkout,
    read_jsonl,
    reference_solution,
)
from exapt.tasks.polyglot.suite import (
    KNOWN_UNSCORABLE,
    LANGS,
    PolyglotScorer,
    PolyglotSuite,
    languages_supported,
    make_task,
    reference_workspace,
    toolchain,
    unscorable,
)

__all__ = [
    "KNOWN_UNSCORABLE",
    "LANGS",
    "LANGUAGES",
    "Exercise",
    "Language",
    "PolyglotScorer",
    "PolyglotSuite",
    "ReportLanguage",
    "Toolchain",
    "languages_supported",
    "make_task",
    "missing_dependencies",
    "read_checkout",
    "read_jsonl",
    "reference_solution",
    "reference_workspace",
    "toolchain",
    "unscorable",
]
