"""The host's side of an attempt whose agent is the variant's own code.

``run_in_sandbox`` opens the task's sandbox with exapt's runtime (``runtime.py``), the
variant's folder and the model proxy's socket bound read-only, runs
``exapt.agents.remote.main`` there as one command (the job on its stdin, the attempt's
wall budget as its timeout, the sandbox's memory, pids and CPU limits around it), and
takes the workspace afterwards. The host process never imports the variant's code.

What the variant does is the attempt's result, never the run's end: a crash, a hang, an
OOM kill, a model call past the budget, a graph that does not build — each is reward 0
with a ``stop_reason`` (``VARIANT_FAILURES``) and the reason in the score's feedback; the
workspace of such an attempt is not scored. A failed model call that is the provider's or
server's fault (not the request's) raises ``ModelError`` as it does for a built-in agent.

Example:
    ran = run_in_sandbox(task, spec, model, factory, files, recorder, budget, started)
    ran.stop_reason, ran.workspace
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exapt.agents.budget import Budget
from exapt.agents.context import Recorder
from exapt.agents.models.base import Model, ModelError
from exapt.agents.remote.client import SOCKET_ENV
from exapt.agents.remote.proxy import ModelProxy
from exapt.agents.remote.runtime import sandbox_runtime
from exapt.agents.spec import AgentSpec
from exapt.errors import ConfigError
from exapt.memory.base import Recollection
from exapt.records import ExecResult, Score, Task
from exapt.sandbox.base import Sandbox, SandboxError, WorkspaceTooLarge
from exapt.tasks.base import SandboxFactory

#: Stop reasons of an attempt whose code failed (reward 0, not scored).
VARIANT_FAILURES = (
    "variant_crash", "variant_timeout", "variant_oom", "budget_overrun", "model_error",
    "variant_build",
)  # fmt: skip
#: Wall seconds an attempt without a wall budget may run.
DEFAULT_WALL_S = 900.0
#: Extra seconds past the wall budget before the process is killed (it stops by itself
#: at the budget; this is for starting Python and reporting).
GRACE_S = 20.0
#: The end of a failed variant's stderr kept (as a note).
STDERR_CHARS = 2000


@dataclass
class Ran:
    """What came back: the workspace (or why it cannot be scored), the stop reason, and
    for a failure the score to record instead of scoring."""

    workspace: dict[str, bytes]
    stop_reason: str
    failure: Score | None = None
    result: ExecResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_in_sandbox(
    task: Task,
    spec: AgentSpec,
    model: Model,
    sandbox: SandboxFactory,
    files: dict[str, str | bytes],
    recorder: Recorder,
    budget: Budget,
    started: float,
    recollection: Recollection | None = None,
    *,
    mode: str = "run",
) -> Ran:
    """Run ``spec``'s own graph on ``task`` in a sandbox from ``sandbox`` (module doc).
    ``mode="build"`` only builds the graph there (``Ran.stop_reason`` ``built`` or
    ``variant_build``). ``ConfigError`` when the factory cannot bind paths or is ``local``."""
    runtime = sandbox_runtime()
    folder = code_folder(spec)
    binding = getattr(sandbox, "with_binds", None)
    if binding is None:
        raise ConfigError(
            "a variant with its own code needs a sandbox factory that binds paths",
            hint="use exapt.tasks.sandbox_factory(backend) (exapt run and evolve do)",
        )
    with ModelProxy(model, recorder, budget, started=started) as proxy:
        box: Sandbox = binding([*runtime.binds, str(folder), proxy.socket_path])(files)
        workspace: dict[str, bytes] = {}
        unscorable: Score | None = None
        try:
            if box.backend == "local":
                raise ConfigError(
                    "a variant's own code runs only in an isolating sandbox, not 'local'",
                    hint="use --sandbox bwrap (or docker)",
                )
            prefix = str(getattr(box, "bind_prefix", ""))
            job = {
                "mode": mode,
                "task": task.public(),
                "spec": spec.model_dump(mode="json"),
                "folder": prefix + str(folder),
                "model": {"name": model.name, "supports_tools": model.supports_tools,
                          "is_base": bool(getattr(model, "is_base", False))},
                "budget": budget.model_dump(mode="json"),
                "limits": box.limits.model_dump(mode="json"),
                "recollection": recollection.model_dump(mode="json") if recollection else None,
                "elapsed_s": time.monotonic() - started,
            }  # fmt: skip
            result = box.exec(
                runtime.argv(prefix),
                stdin=json.dumps(job) + "\n",
                timeout=_timeout(budget, started),
                env={SOCKET_ENV: prefix + proxy.socket_path, **runtime.env(prefix)},
            )
            if mode == "run":
                workspace, unscorable = _snapshot(box)
        finally:
            box.close()
    if proxy.model_error is not None and proxy.model_error[1]:
        raise ModelError(f"model {model.name!r} failed: {proxy.model_error[0]}")
    ran = _verdict(proxy, result, budget, mode)
    if ran.failure is not None and result.stderr.strip():
        # What the code printed is its own claim: a note, never the score's feedback (which
        # memory and mutators read as the judge's word).
        ran.extra["stderr"] = result.stderr[-STDERR_CHARS:]
        recorder.note("the variant's stderr (end)", reported_by="variant",
                      stderr=ran.extra["stderr"])  # fmt: skip
    if ran.failure is None and unscorable is not None:
        ran.failure = unscorable
        ran.stop_reason = (
            "workspace_too_large" if unscorable.failure == "too_large" else "snapshot_failed"
        )
    ran.workspace = workspace if ran.failure is None else {}
    return ran


def build_check(spec: AgentSpec, sandbox: SandboxFactory) -> str | None:
    """None when ``spec``'s own graph builds in a sandbox from ``sandbox``, else why not
    (what a self-modified child must pass before it is evaluated)."""
    from exapt.records import Trajectory

    task = Task(id="build-check", suite="build-check", instruction="(build only)")
    recorder = Recorder(Trajectory(run_id="build-check", task_id=task.id))
    budget = Budget(max_steps=1, max_wall_s=120)
    ran = run_in_sandbox(task, spec, _NoModel(), sandbox, {}, recorder, budget,
                         time.monotonic(), mode="build")  # fmt: skip
    if ran.stop_reason == "built":
        return None
    why = ran.failure.feedback if ran.failure is not None else ran.stop_reason
    tail = str(ran.extra.get("stderr", "")).strip().splitlines()[-3:]
    return "\n".join([why, *tail])


class _NoModel:
    """The model of a build check: never called (the graph is only built)."""

    name = "none"
    supports_tools = True
    is_base = False

    def chat(self, messages: Any, *, tools: Any = None, **params: Any) -> Any:
        raise ModelError("no model calls in a build check")

    def complete(self, prompt: str, *, stop: Any = None, **params: Any) -> Any:
        raise ModelError("no model calls in a build check")


def _verdict(proxy: ModelProxy, result: ExecResult, budget: Budget, mode: str) -> Ran:
    """The stop reason: what the host saw first (budget refusals, the kill, the exit
    status), the variant's own report last."""
    if proxy.budget_stop is not None:
        return _failure(
            "budget_overrun",
            f"the variant called the model after its budget was spent ({proxy.budget_stop}); "
            f"{proxy.refused} call(s) refused",
            result,
        )
    if result.timed_out:
        return _failure(
            "variant_timeout", f"the variant ran past its wall budget and was killed "
            f"after {result.duration_s:.0f} s", result,
        )  # fmt: skip
    if result.oom_killed:
        return _failure("variant_oom", "the variant ran out of memory and was killed", result)
    if proxy.model_error is not None:
        return _failure("model_error", f"a model call failed: {proxy.model_error[0]}", result)
    if result.exit_code != 0:
        what = "its graph did not build" if mode == "build" and not proxy.built else "it crashed"
        reason = "variant_build" if mode == "build" else "variant_crash"
        message = f"the variant's code exited {result.exit_code}: {what}"
        return _failure(reason, message, result)
    if mode == "build":
        if not proxy.built:
            return _failure("variant_build", "the variant ended without building its graph", result)
        return Ran(workspace={}, stop_reason="built", result=result)
    return Ran(workspace={}, stop_reason=proxy.claimed_stop or "done", result=result)


def _failure(reason: str, message: str, result: ExecResult) -> Ran:
    score = Score(reward=0.0, passed=False, feedback=message[:2000], failure=reason)
    return Ran(workspace={}, stop_reason=reason, failure=score, result=result)


def _timeout(budget: Budget, started: float) -> float:
    left = budget.remaining_wall(started)
    return (DEFAULT_WALL_S if left is None else max(1.0, left)) + GRACE_S


def _snapshot(box: Sandbox) -> tuple[dict[str, bytes], Score | None]:
    try:
        return box.snapshot(), None
    except SandboxError as exc:
        what = "too_large" if isinstance(exc, WorkspaceTooLarge) else "snapshot_failed"
        return {}, Score(reward=0.0, passed=False, error=f"snapshot failed: {exc}"[:2000],
                         failure=what)  # fmt: skip


# --- the variants' folders on the host (read-only in the sandbox) --------------------------

_folders_lock = threading.Lock()
_folders_root: Path | None = None


def code_folder(spec: AgentSpec) -> Path:
    """A folder holding ``spec.code`` (written once per process and variant, then only read):
    what the sandbox binds read-only as the variant's folder."""
    global _folders_root
    with _folders_lock:
        if _folders_root is None:
            _remove_stale()
            _folders_root = Path(tempfile.mkdtemp(prefix=f"exapt-code-{os.getpid()}-"))
            atexit.register(shutil.rmtree, _folders_root, True)
        target = _folders_root / spec.variant_id()
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(dir=_folders_root, prefix=".tmp-"))
        for rel, text in spec.code.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for dirpath, _dirs, names in os.walk(tmp):
            os.chmod(dirpath, 0o755)  # readable by the sandbox user, writable by no one there
            for name in names:
                os.chmod(Path(dirpath) / name, 0o644)
        os.rename(tmp, target)
        return target


def _remove_stale() -> None:
    """Folders of code and proxy sockets left by exapt processes that died (not ours)."""
    base = Path(tempfile.gettempdir())
    for prefix in ("exapt-code-", "exapt-proxy-"):
        for path in base.glob(f"{prefix}*"):
            pid = path.name.removeprefix(prefix).split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(path, ignore_errors=True)
