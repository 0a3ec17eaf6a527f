"""The Python judge: hidden tests run in a process the solution cannot reach.

Two processes per judgement, connected only through this host, line by line:

- the **solution's**: ``serve.py`` in a fresh sandbox seeded with the workspace; it imports
  the solution's modules and answers requests on them;
- the **judge's**: ``judge.py``, which runs the hidden tests. The modules a test imports
  from the solution are proxies: each call, attribute or operator is a request to the
  solution's process, and values come back as plain data (or as handles, see ``wire.py``).

Why the solution cannot reach the judge: no solution code ever runs in the judge's process,
so it cannot read the judge's frames, patch its interpreter or its ``unittest``, shadow its
standard library (the judge runs ``python3 -I -S``, the workspace is not even on its path)
or exit it. The two share no memory, files, pipes or process namespace: for data that ships
with exapt's dependencies (HumanEval's tests, ``judge_on_host=True``) the judge is a host
process outside every sandbox; for anything else (a user's or a model's tests) it is a
second fresh sandbox from the same factory, whose pid, network and mount namespaces are not
the solution's. The only thing the solution sends is lines of JSON (``MAX_LINE`` each),
which this relay passes to the judge and the judge decodes into plain values. Its process
dying, hanging or sending garbage is a failed test, never a pass; the verdict is the judge's
last line, carrying a nonce the solution never sees.

What stays possible: whatever the tests themselves let a solution do (an object whose
methods decide a comparison between two of the solution's own objects; the public methods
of an object a test hands it). In ``plain`` mode (HumanEval, skills) every call must return
plain data, so not even that.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import marshal
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

from exapt.records import ExecResult
from exapt.sandbox.base import Interactive, SandboxError
from exapt.tasks.base import SandboxFactory

log = logging.getLogger(__name__)

MAX_LINE = 16_000_000
GONE = b'{"gone":"the solution\'s process ended or broke the protocol"}\n'
_VERDICT = b'{"verdict":'
# Loads the wire's three modules from argv[1:7] and runs the main module from argv[7:9]:
# each is (marshalled code for this bytecode version, source if the interpreter is another
# one). Compiling the sources cost ~7 ms a process; loading the code, under 1 ms.
_WIRE = (("exapt_ops", "ops.py"), ("exapt_values", "values.py"), ("exapt_wire", "wire.py"))
_BOOT = (
    "import sys, types, marshal, binascii, _frozen_importlib_external as _ext\n"
    "def code(blob, src, name):\n"
    "    magic, _, data = blob.partition(':')\n"
    "    if magic == _ext.MAGIC_NUMBER.hex():\n"
    "        try: return marshal.loads(binascii.a2b_base64(data))\n"
    "        except Exception: pass\n"
    "    return compile(src, name, 'exec')\n"
    "for i, name in enumerate(('exapt_ops', 'exapt_values', 'exapt_wire')):\n"
    "    module = types.ModuleType(name)\n"
    "    sys.modules[name] = module\n"
    "    exec(code(sys.argv[1 + 2 * i], sys.argv[2 + 2 * i], name), module.__dict__)\n"
    "main = code(sys.argv[7], sys.argv[8], 'exapt_main')\n"
    "del sys.argv[1:9], code, i, name, module\n"
    "exec(main, {'__name__': '__main__'})\n"
)


def _wire() -> list[str]:
    return [part for _, file in _WIRE for part in _source(file)]


@cache
def _source(name: str) -> tuple[str, str]:
    """(marshalled code with its bytecode magic, source) of one of this folder's files."""
    text = (Path(__file__).parent / name).read_text(encoding="utf-8")
    label = {file: module for module, file in _WIRE}.get(name, "exapt_main")
    code = marshal.dumps(compile(text, label, "exec"))
    magic = importlib.util.MAGIC_NUMBER.hex()
    return f"{magic}:{base64.b64encode(code).decode()}", text


def serve_command(*, plain: bool) -> list[str]:
    """argv of the solution's end (``python3 -I``: isolated, the workspace first on path)."""
    mode = "plain" if plain else "objects"
    return ["python3", "-I", "-B", "-c", _BOOT, *_wire(), *_source("serve.py"), mode]


def judge_command(python: str = "python3") -> list[str]:
    """argv of the judge's end (``-I -S``: nothing but the interpreter's own modules)."""
    return [python, "-I", "-S", "-c", _BOOT, *_wire(), *_source("judge.py")]


def host_python() -> str:
    """The interpreter of a judge on the host: Debian's python3 (starts in half the time of
    a venv's), else this one."""
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


@dataclass
class TestOutcome:
    name: str
    outcome: str  # pass | fail | error | skip
    error: str = ""  # the exception's type name
    remote: bool = False  # raised in (or by the end of) the solution's process


@dataclass
class Verdict:
    """What the judge saw. ``broken`` is set when the judge itself could not give a verdict
    (crashed, timed out, or its verdict was malformed): then ``tests`` is empty."""

    tests: list[TestOutcome] = field(default_factory=list)
    #: outcomes of the visible examples (by index), when the spec had any
    visible: list[TestOutcome] = field(default_factory=list)
    solution_gone: str | None = None
    timed_out: bool = False
    broken: str | None = None
    duration_s: float = 0.0

    @property
    def passed_names(self) -> set[str]:
        return {t.name for t in self.tests if t.outcome == "pass"}


def _outcome(t: dict[str, Any]) -> TestOutcome:
    return TestOutcome(
        name=str(t["name"]),
        outcome=str(t["outcome"]),
        error=str(t.get("error", ""))[:80],
        remote=bool(t.get("remote", False)),
    )


def _parse_verdict(line: bytes, nonce: str) -> Verdict:
    try:
        data = json.loads(line)["verdict"]
        if data.get("nonce") != nonce:
            return Verdict(broken="a verdict without the judge's nonce")
        tests, visible = ([_outcome(t) for t in data[key]] for key in ("tests", "visible"))
        return Verdict(tests=tests, visible=visible, solution_gone=data.get("gone"))
    except (ValueError, KeyError, TypeError) as exc:
        return Verdict(broken=f"a malformed verdict ({type(exc).__name__})")


def relay(
    judge: Interactive, solution: Interactive, spec: dict[str, Any], timeout_s: float
) -> Verdict:
    """Pass lines between the two ends until the judge's verdict (turn by turn: every line
    of the judge is answered by one line of the solution)."""
    nonce = secrets.token_hex(16)
    deadline = time.monotonic() + timeout_s
    alive = True
    try:
        judge.send((json.dumps({"spec": {**spec, "nonce": nonce}}) + "\n").encode())
        while True:
            line = judge.readline(max(0.01, deadline - time.monotonic()), MAX_LINE)
            if not line.endswith(b"\n"):
                return Verdict(broken="the judge ended without a verdict")
            if line.startswith(_VERDICT):
                return _parse_verdict(line, nonce)
            reply = GONE
            if alive:
                try:
                    solution.send(line)
                    reply = solution.readline(max(0.01, deadline - time.monotonic()), MAX_LINE)
                except (BrokenPipeError, SandboxError):
                    reply = b""
                if not reply.endswith(b"\n"):
                    alive, reply = False, GONE
            judge.send(reply)
    except TimeoutError:
        return Verdict(timed_out=True)
    except BrokenPipeError:
        return Verdict(broken="the judge ended without a verdict")


def _host_judge(timeout_s: float) -> Interactive:
    """The judge as a host process (for test data that ships with exapt's dependencies)."""
    from exapt.sandbox._interactive import PipeInteractive
    from exapt.sandbox._process import kill_group

    def finish(cap: Any) -> ExecResult:
        return ExecResult(exit_code=cap.returncode, stderr=cap.stderr.decode("utf-8", "replace"))

    return PipeInteractive(
        judge_command(host_python()),
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        cwd="/",
        timeout=timeout_s + 5,
        stderr_bytes=64_000,
        kill=kill_group,
        finish=finish,
    )


def judge(
    spec: dict[str, Any],
    workspace: dict[str, str | bytes],
    sandbox: SandboxFactory,
    *,
    timeout_s: float,
    judge_on_host: bool = False,
    setup: str | None = None,
) -> Verdict:
    """Judge ``workspace`` with ``spec`` (see ``judge.py`` for the modes): the solution in
    a fresh sandbox from ``sandbox``, the judge on the host or in a second fresh one.
    ``setup``: a shell command run in the solution's sandbox before its server starts.

    Raises what the factory raises when a sandbox cannot be opened; everything the
    solution does is in the ``Verdict``."""
    started = time.monotonic()
    plain = bool(spec.get("plain"))
    serve: str | list[str] = serve_command(plain=plain)
    if setup:
        # the setup's output goes to stderr: stdout is the wire
        serve = ["/bin/sh", "-c", f'{{ {setup} ; }} 1>&2; exec "$@"', "exapt-setup", *serve]
    with sandbox(workspace) as box, box.spawn(serve, timeout=timeout_s) as solution:
        if judge_on_host:
            with _host_judge(timeout_s) as judge_end:
                verdict = relay(judge_end, solution, spec, timeout_s)
                judge_end.close()
        else:
            with (
                sandbox({}) as judge_box,
                judge_box.spawn(judge_command(), timeout=timeout_s + 5) as judge_end,
            ):
                verdict = relay(judge_end, solution, spec, timeout_s)
                end = judge_end.close()
                if verdict.broken:
                    log.debug("judge stderr: %s", end.stderr[-2000:])
    verdict.duration_s = time.monotonic() - started
    return verdict


def module_names(workspace: dict[str, Any], exclude: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Top-level modules and packages a workspace provides (``x.py``, ``x/__init__.py``)."""
    names: set[str] = set()
    for path in workspace:
        parts = PurePosixPath(path).parts
        if len(parts) == 1 and parts[0].endswith(".py"):
            names.add(parts[0][:-3])
        elif len(parts) == 2 and parts[1] == "__init__.py":
            names.add(parts[0])
    return sorted(n for n in names if n.isidentifier() and n not in exclude)


def unittest_ids(sources: dict[str, str], modules: list[str]) -> list[str]:
    """``module.Class.method`` of every ``test*`` method of the classes in ``modules``
    (module name -> source in ``sources``), read from their syntax tree on the host: what
    a judge running them with ``unittest`` must report, no more, no less."""
    import ast

    ids = []
    for module in modules:
        for node in ast.parse(sources[module]).body:
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(
                        item, ast.FunctionDef | ast.AsyncFunctionDef
                    ) and item.name.startswith("test"):
                        ids.append(f"{module}.{node.name}.{item.name}")
    return sorted(ids)
