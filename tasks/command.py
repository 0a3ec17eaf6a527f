"""Run hidden tests in a fresh sandbox and turn what they did into a ``Score``; the sandbox
factories scorers are given.

``CommandScorer`` (JSONL tasks with a report) reads these keys of ``task.hidden``:

- ``tests``: path -> text, copied over the workspace snapshot (an agent that edited or
  deleted a test file gets the original back);
- ``restore`` (optional): path -> text of build files put back the same way, so a solution
  cannot pass by rewriting how the tests are run;
- ``test_command``: a shell command run in ``/workspace``;
- ``report``: the workspace path of the JUnit XML report the command writes, and
  ``expected_tests``: how many test cases it must list. A pass needs exactly that many,
  all passed, and exit status 0; the exit status alone never passes;
- ``timeout_s`` (optional, default ``DEFAULT_TIMEOUT_S``): wall seconds for the command;
- ``env`` (optional): extra environment variables for the command;
- ``drop_dirs`` (optional): top-level folders of the workspace not copied in (build output
  such as ``target/``: large, and it must not influence the fresh build).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from exapt.errors import ExaptError
from exapt.sandbox.base import ExecResult, Limits, Sandbox, SandboxError
from exapt.tasks.base import SandboxFactory, Score, Task
from exapt.tasks.verdict import Seen, failed, judged

DEFAULT_TIMEOUT_S = 60.0
FEEDBACK_BYTES = 2000


def tail(text: str, limit: int = FEEDBACK_BYTES) -> str:
    """The last ``limit`` characters of ``text`` (the end of a test log says what failed)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return "...[cut]...\n" + text[-limit:]


def seed_files(
    workspace: Mapping[str, bytes | str], *overlays: Mapping[str, str | bytes]
) -> dict[str, str | bytes]:
    """The files of a fresh scoring sandbox: the workspace snapshot, then each overlay on top.

    Only these reach the sandbox: the scorer never reads anything else of the host.
    """
    files: dict[str, str | bytes] = dict(workspace)
    for overlay in overlays:
        files.update(overlay)
    return files


def run_fresh(
    sandbox: SandboxFactory,
    files: dict[str, str | bytes],
    command: str | list[str],
    *,
    timeout_s: float,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> ExecResult:
    """Open a fresh sandbox seeded with ``files``, run ``command`` once, close it.

    Raises what the factory or the sandbox raise when the sandbox itself is broken.
    """
    with sandbox(files) as box:
        return box.exec(command, timeout=timeout_s, env=env, stdin=stdin)


def score_result(result: ExecResult, *, timeout_s: float, started: float) -> Score:
    """Reward 1 when the command exited 0 in time, else 0 with the log's tail as feedback."""
    log = "\n".join(part for part in (result.stdout, result.stderr) if part.strip())
    duration = time.monotonic() - started
    if result.timed_out:
        return Score(
            reward=0.0,
            passed=False,
            feedback=f"timed out after {timeout_s:g} s (infinite loop or too slow?)\n"
            + tail(log, FEEDBACK_BYTES // 2),
            duration_s=duration,
        )
    if result.oom_killed:
        return Score(
            reward=0.0,
            passed=False,
            feedback="killed: out of memory\n" + tail(log, FEEDBACK_BYTES // 2),
            duration_s=duration,
        )
    passed = result.exit_code == 0
    return Score(
        reward=1.0 if passed else 0.0,
        passed=passed,
        feedback=tail(log) if log else f"exit code {result.exit_code}",
        duration_s=duration,
    )


def broken(exc: Exception, started: float) -> Score:
    """The score when the sandbox itself failed: 0 with ``error`` set (not the solution's fault)."""
    return Score(
        reward=0.0,
        passed=False,
        error=f"{type(exc).__name__}: {exc}",
        feedback="the tests could not be run (sandbox failure)",
        duration_s=time.monotonic() - started,
        failure="broken",
    )


def sandbox_factory(
    backend: str = "default",
    *,
    limits: Limits | None = None,
    ro_binds: Sequence[str] = (),
) -> SandboxFactory:
    """A ``SandboxFactory`` opening ``backend`` sandboxes with these limits and binds.

    Pass a suite's ``ro_binds()`` (toolchains outside /usr, e.g. rustup's) so its scorer
    finds them. Example:
        factory = sandbox_factory("bwrap", ro_binds=suite.ro_binds())
    """
    from exapt.sandbox import open_sandbox  # the backends load only when a sandbox is made

    binds = list(ro_binds)

    def factory(files: dict[str, str | bytes]) -> Sandbox:
        return open_sandbox(backend, files=files, limits=limits, ro_binds=binds or None)

    return factory


def suite_sandbox_factory(suite: object, backend: str = "default") -> SandboxFactory:
    """The ``SandboxFactory`` a suite's scorer needs: its ``limits()`` and ``ro_binds()``
    (optional methods of a suite; the defaults when absent).

    Example:
        score = suite.scorer().score(task, snapshot, suite_sandbox_factory(suite))
    """
    own = getattr(suite, "environment_factory", None)
    if callable(own):  # a suite with its own environment (miniwob: a browser episode)
        return own(backend)  # type: ignore[no-any-return]
    limits = getattr(suite, "limits", None)
    binds = getattr(suite, "ro_binds", None)
    return sandbox_factory(
        backend,
        limits=limits() if callable(limits) else None,
        ro_binds=binds() if callable(binds) else (),
    )


def run_for_report(
    sandbox: SandboxFactory,
    files: dict[str, str | bytes],
    command: str,
    report_path: str,
    *,
    timeout_s: float,
    env: dict[str, str] | None,
    started: float,
) -> Score | tuple[ExecResult, bytes | None]:
    """Run ``command`` in a fresh sandbox and read the report it wrote (None if absent):
    (result, report), or the failed ``Score`` of a broken sandbox, a timeout or an OOM."""
    report: bytes | None = None
    try:
        with sandbox(files) as box:
            result = box.exec(command, timeout=timeout_s, env=env)
            try:
                report = box.read(report_path)
            except (FileNotFoundError, SandboxError):
                report = None
    except (ExaptError, OSError) as exc:  # the sandbox broke, not the solution: report it
        return broken(exc, started)
    if result.timed_out:
        return failed("timeout", f"timed out after {timeout_s:g} s (too slow, or stuck?)", started)
    if result.oom_killed:
        return failed("oom", "killed: out of memory", started)
    return result, report


def from_report(
    seen: Seen,
    expected: list[str],
    result: ExecResult,
    started: float,
    *,
    by_count: bool = False,
    nothing_ran: str = "the tests did not run to the end (no test report)",
) -> Score:
    """The score of a framework's report (``seen``) against the host's ``expected`` tests:
    evidence ``report``; a pass also needs the command's exit status 0."""
    if not seen.outcomes:
        return failed("no_report", nothing_ran, started)
    if by_count:
        expected = [f"#{i}" for i in range(len(expected))]
        seen = Seen({f"#{i}": v for i, v in enumerate(seen.outcomes.values())})
    score = judged(seen, expected, started, evidence="report")
    if score.passed and result.exit_code != 0:
        note = f"the test command exited {result.exit_code} after a passing report"
        return failed("tests_failed", note, started, evidence="report")
    return score


class CommandScorer:
    """Copies ``hidden["tests"]`` over the workspace in a fresh sandbox, runs
    ``hidden["test_command"]`` and judges the JUnit report it wrote (module doc): evidence
    ``report``. A task without ``report`` cannot be judged soundly: ``ValueError``.

    Example:
        score = CommandScorer().score(task, box.snapshot(), factory)
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        #: overrides every task's own ``timeout_s`` when set
        self.timeout_s = timeout_s

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        hidden: dict[str, Any] = task.hidden
        command = hidden.get("test_command")
        report_path = hidden.get("report")
        if not command or not report_path or not hidden.get("expected_tests"):
            raise ValueError(
                f"task {task.id!r} has no test_command with a report and expected_tests: an "
                "exit status alone cannot be trusted"
            )
        timeout_s = float(self.timeout_s or hidden.get("timeout_s") or DEFAULT_TIMEOUT_S)
        drop = set(hidden.get("drop_dirs", ()))
        kept = {p: data for p, data in workspace.items() if p.split("/", 1)[0] not in drop}
        kept.pop(report_path, None)  # a report the agent left is not the tests'
        files = seed_files(kept, hidden.get("restore", {}), hidden.get("tests", {}))
        started = time.monotonic()
        ran = run_for_report(
            sandbox,
            files,
            command,
            report_path,
            timeout_s=timeout_s,
            env=hidden.get("env"),
            started=started,
        )
        if isinstance(ran, Score):
            return ran
        result, report = ran
        try:
            seen = junit(report) if report is not None else Seen({})
        except (ValueError, SyntaxError) as exc:
            return failed(
                "no_report", f"the test report is malformed ({type(exc).__name__})", started
            )
        n = int(hidden["expected_tests"])
        return from_report(seen, [f"#{i}" for i in range(n)], result, started, by_count=True)


def junit(data: bytes) -> Seen:
    """The test cases of a JUnit XML report (``<testcase>`` elements), in order."""
    import defusedxml.ElementTree as SafeET  # XML from the solution's sandbox: no entities

    root = SafeET.fromstring(data)
    items = []
    for i, case in enumerate(root.iter("testcase")):
        if case.find("failure") is not None:
            outcome = "fail"
        elif case.find("error") is not None:
            outcome = "error"
        elif case.find("skipped") is not None:
            outcome = "skip"
        else:
            outcome = "pass"
        name = f"{i}:{case.get('classname', '')}.{case.get('name', '')}"
        items.append((name, outcome, "", False))
    return Seen.of(items)
