"""Run hidden tests in a fresh sandbox and turn what they did into a ``Score``.

Shared by the suites whose tests are "copy these files in, run this command, exit 0 means
pass" (JSONL and Polyglot), and by HumanEval's harness.

``CommandScorer`` reads these keys of ``task.hidden``:

- ``tests``: path -> text, copied over the workspace snapshot (an agent that edited or
  deleted a test file gets the original back);
- ``restore`` (optional): path -> text of build files put back the same way (CMakeLists.txt,
  the Catch main...), so a solution cannot pass by rewriting how the tests are run;
- ``test_command``: a shell command run in ``/workspace``; exit status 0 = every test passed;
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
from exapt.sandbox.base import ExecResult, Limits, Sandbox
from exapt.tasks.base import SandboxFactory, Score, Task

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


class CommandScorer:
    """Copies ``hidden["tests"]`` over the workspace in a fresh sandbox and runs
    ``hidden["test_command"]``; exit 0 = reward 1, anything else (or a timeout) = 0.

    Example:
        score = CommandScorer().score(task, box.snapshot(), factory)
    """

    def __init__(self, timeout_s: float | None = None) -> None:
        #: overrides every task's own ``timeout_s`` when set
        self.timeout_s = timeout_s

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        hidden: dict[str, Any] = task.hidden
        command = hidden.get("test_command")
        if not command:
            raise ValueError(f"task {task.id!r} has no hidden test_command: it cannot be scored")
        timeout_s = float(self.timeout_s or hidden.get("timeout_s") or DEFAULT_TIMEOUT_S)
        drop = set(hidden.get("drop_dirs", ()))
        kept = {p: data for p, data in workspace.items() if p.split("/", 1)[0] not in drop}
        files = seed_files(kept, hidden.get("restore", {}), hidden.get("tests", {}))
        started = time.monotonic()
        try:
            result = run_fresh(sandbox, files, command, timeout_s=timeout_s, env=hidden.get("env"))
        except (ExaptError, OSError) as exc:  # the sandbox broke, not the solution: report it
            return broken(exc, started)
        return score_result(result, timeout_s=timeout_s, started=started)
