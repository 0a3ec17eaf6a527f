"""A variant that carries code runs in the task's sandbox, with the same trajectory as the
built-in agent it wraps; the host process never imports it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from selfmod_helpers import TASK, AnswerScorer, attempt, code_variant, hostile_variant, notes

from exapt.agents.models import ModelReply, ScriptedModel, ToolCall
from exapt.agents.runner import build_graph, run_task
from exapt.agents.spec import load_spec
from exapt.errors import ConfigError
from exapt.evolve.variant import Variant

WRAP = """
from exapt.agents.graphs.tool_coder import build as tool_coder


def build(spec):
    return tool_coder(spec)
"""


def script() -> list[ModelReply]:
    return [
        ModelReply(
            tool_calls=[ToolCall(id="c1", name="shell", arguments={"command": "cat question.txt"})]
        ),
        ModelReply(text="thinking about it"),  # no call: the format_error note, then on
        ModelReply(
            tool_calls=[
                ToolCall(
                    id="c2", name="create", arguments={"path": "answer.txt", "content": "42\n"}
                )
            ]
        ),
        ModelReply(tool_calls=[ToolCall(id="c3", name="submit", arguments={})]),
    ]


def test_code_variant_gives_the_builtin_trajectory(tmp_path: Path, backend: str) -> None:
    builtin = attempt(load_spec("tool_coder"), ScriptedModel(script()), backend=backend)
    spec = code_variant(tmp_path / "v", WRAP)
    model = ScriptedModel(script())
    mine = attempt(spec, model, backend=backend)
    kinds = [s.kind for s in mine.trajectory.steps]
    assert kinds == [s.kind for s in builtin.trajectory.steps]
    assert kinds == ["model", "tool", "model", "note", "model", "tool", "model", "tool", "score"]
    assert mine.score.passed and builtin.score.passed
    assert mine.trajectory.result.stop_reason == builtin.trajectory.result.stop_reason
    assert mine.trajectory.result.stop_reason == "submitted"
    # the model saw the same conversation, observations included
    sent = [s.input["messages"] for s in mine.trajectory.steps if s.kind == "model"]
    assert sent == [s.input["messages"] for s in builtin.trajectory.steps if s.kind == "model"]
    assert "six times seven" in str(sent[1])
    assert mine.trajectory.tokens_in == builtin.trajectory.tokens_in > 0
    assert len(model.calls) == 4  # every call went through the host's model, in the host
    assert mine.trajectory.variant_id == spec.variant_id() != load_spec("tool_coder").variant_id()


def test_the_host_never_imports_variant_code(tmp_path: Path, bwrap: str) -> None:
    marker = tmp_path / "imported-on-the-host"
    spec = hostile_variant(
        tmp_path / "v",
        f"""
        import os
        open({str(marker)!r}, "w").close() if os.path.isdir({str(tmp_path)!r}) else None
        ctx.recorder.note("ran", inside=os.path.isdir("/workspace"), host=os.path.isdir({str(tmp_path)!r}))
        """,  # noqa: E501
    )
    with pytest.raises(ConfigError, match="inside the sandbox"):
        build_graph(spec)
    a = attempt(spec, ScriptedModel([]))
    assert notes(a) == [{"inside": True, "host": False}]  # it ran, in the sandbox
    assert not marker.exists()
    assert "agent" not in sys.modules and not any("agent.py" in str(m) for m in sys.modules)


def test_code_needs_an_isolating_binding_factory(tmp_path: Path) -> None:
    spec = hostile_variant(tmp_path / "v", "pass")
    with pytest.raises(ConfigError, match="binds paths"):
        run_task(TASK, spec=spec, model=ScriptedModel([]),
                 sandbox=lambda files: None,  # type: ignore[arg-type, return-value]
                 scorer=AnswerScorer(), run_id="r")  # fmt: skip
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="isolating"):
        attempt(spec, ScriptedModel([]), backend="local")


def test_a_variant_folder_carries_its_code(tmp_path: Path) -> None:
    spec = code_variant(tmp_path / "v", WRAP)
    assert spec.carries_code and set(spec.code) == {"agent.py"}
    variant = Variant.from_dir(tmp_path / "v")
    assert variant.load_spec() == spec
    changed = variant.with_files({"agent.py": WRAP + "\n# changed\n"})
    assert changed.id != variant.id
    assert changed.load_spec().variant_id() != spec.variant_id()  # the code is in the id
    (tmp_path / "v" / "helper.py").write_text("X = 1\n")
    assert set(load_spec(tmp_path / "v" / "spec.yaml").code) == {"agent.py", "helper.py"}
    # a spec saved and loaded again is equal, code included
    spec.save(tmp_path / "copy")
    assert load_spec(tmp_path / "copy" / "spec.yaml") == spec


def test_helper_modules_beside_agent_py_import(tmp_path: Path, bwrap: str) -> None:
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "helper.py").write_text("ANSWER = '42'\n")
    spec = hostile_variant(
        tmp_path / "v",
        """
        import helper
        ctx.sandbox.write("answer.txt", helper.ANSWER)
        """,
    )
    a = attempt(spec, ScriptedModel([]))
    assert a.score.passed and a.trajectory.result.stop_reason == "done"


def test_exapt_run_runs_an_agent_with_its_own_code(tmp_path: Path, bwrap: str, home: Path) -> None:
    import json
    import os
    import subprocess

    from selfmod_helpers import seed_folder, write_tasks

    folder = seed_folder(tmp_path / "agent")
    (folder / "agent.py").write_text((folder / "agent.py").read_text().replace(
        "OFFSET = 1", "OFFSET = 0"))  # fmt: skip
    (tmp_path / "none.json").write_text("{}")
    cmd = [sys.executable, "-m", "exapt.cli", "run", "--suite",
           f"jsonl:{write_tasks(tmp_path / 't.jsonl', 3)}", "--agent", str(folder / "spec.yaml"),
           "--model", f"scripted:{tmp_path / 'none.json'}", "--sandbox", "bwrap", "--no-memory",
           "--json"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "EXAPT_HOME": str(home)})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert (summary["n_tasks"], summary["n_passed"], summary["agent"]) == (3, 3, "offby1")


def test_folders_of_dead_processes_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import tempfile

    from exapt.agents.remote import host

    base = Path(tempfile.gettempdir())
    dead = [base / "exapt-code-999999999-old", base / "exapt-proxy-999999999-old"]
    alive = base / f"exapt-proxy-{os.getppid()}-kept"
    for folder in [*dead, alive]:
        folder.mkdir(exist_ok=True)
    monkeypatch.setattr(host, "_folders_root", None)
    try:
        spec = code_variant(tmp_path / "v", WRAP)
        folder = host.code_folder(spec)
        assert (folder / "agent.py").read_text() == spec.code["agent.py"]
        assert not any(d.exists() for d in dead) and alive.exists()
        assert oct(folder.stat().st_mode & 0o777) == "0o755"
    finally:
        alive.rmdir()
