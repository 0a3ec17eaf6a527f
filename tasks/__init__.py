"""Tasks, suites and their scorers: what an agent is asked to do and how it is judged.

Example:
    from exapt.tasks import load_suite, split_tasks
    suite = load_suite("humaneval")
    tasks = split_tasks(suite.tasks(), "dev")
    score = suite.scorer().score(tasks[0], workspace_snapshot, sandbox_factory)
    judge_asserts(code, ["assert f(1) == 2"], sandbox_factory)   # skills: code + asserts

Suites: ``humaneval``; ``polyglot:PATH`` (a checkout of Aider's polyglot-benchmark or a JSONL
of its exercises); ``jsonl:PATH`` (a user's own tasks, format in ``exapt.tasks.jsonl``).
This package never imports ``exapt.agents`` or ``exapt.evolve``: the evaluator does not know
who is evaluated.
"""

from __future__ import annotations

from exapt.errors import ConfigError
from exapt.tasks.asserts import judge_asserts
from exapt.tasks.base import SandboxFactory, Score, Scorer, Suite, Task
from exapt.tasks.command import sandbox_factory, suite_sandbox_factory
from exapt.tasks.splits import SPLITS, split_of, split_tasks

#: Suite names ``load_suite`` understands; ``PATH`` is a file or folder on this machine.
SUITES: tuple[str, ...] = ("humaneval", "polyglot:PATH", "jsonl:PATH", "miniwob[:OPTIONS]")

__all__ = [
    "SPLITS",
    "SUITES",
    "SandboxFactory",
    "Score",
    "Scorer",
    "Suite",
    "Task",
    "judge_asserts",
    "load_suite",
    "sandbox_factory",
    "split_of",
    "split_tasks",
    "suite_sandbox_factory",
]


def load_suite(spec: str) -> Suite:
    """The suite named ``spec``: ``humaneval``, ``polyglot:PATH`` or ``jsonl:PATH``.

    Raises ``ConfigError`` for an unknown name (listing the valid ones), a missing path or a
    malformed file.

    Example:
        suite = load_suite("jsonl:my_tasks.jsonl")
    """
    kind, sep, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "humaneval" and not sep:
        from exapt.tasks.humaneval import HumanEvalSuite

        return HumanEvalSuite()
    if kind == "miniwob":  # web tasks in a browser (exapt.tasks.miniwob)
        from exapt.tasks.miniwob import MiniWoBSuite

        return MiniWoBSuite.from_spec(arg)
    if kind in ("polyglot", "jsonl"):
        if not arg.strip():
            raise ConfigError(f"suite {spec!r} needs a path", hint=f"write it as {kind}:PATH")
        if kind == "jsonl":
            from exapt.tasks.jsonl import JsonlSuite

            return JsonlSuite(arg.strip())
        from exapt.tasks.polyglot import PolyglotSuite

        return PolyglotSuite(arg.strip())
    raise ConfigError(f"unknown suite {spec!r}", hint=f"use one of: {', '.join(SUITES)}")
