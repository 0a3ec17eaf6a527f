"""AgentSpec: YAML loading with errors that name the file and field; content-addressed ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.agents import AgentSpec, default_spec_for, load_spec
from exapt.agents.models import ScriptedModel
from exapt.agents.spec import SPECS_DIR
from exapt.errors import ConfigError
from exapt.tasks.base import Task

GOOD = """\
name: mine
graph: tool_coder
model: openai/gpt-4o-mini
prompts:
  system: file:prompts/system.md.j2
  instance: "Solve {{ task.id }}"
  format_error: "Call a tool."
  memory: ""
tools: [shell, submit]
limits: {max_steps: 7, max_cost_usd: 0.5}
graph_options: {temperature: 0.2}
memory: {reflections_k: 1}
"""


def write_spec(
    tmp_path: Path, text: str = GOOD, system: str = "You are {{ task.id }}'s coder."
) -> Path:
    (tmp_path / "prompts").mkdir(exist_ok=True)
    (tmp_path / "prompts" / "system.md.j2").write_text(system)
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_loads_a_spec_and_reads_prompt_files_relative_to_it(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path))
    assert spec.prompts["system"] == "You are {{ task.id }}'s coder."
    assert spec.limits.max_steps == 7 and spec.limits.max_cost_usd == 0.5
    assert spec.memory.reflections_k == 1 and spec.memory.skills_k == 3
    assert spec.tools == ["shell", "submit"] and spec.model == "openai/gpt-4o-mini"
    assert load_spec(str(write_spec(tmp_path))) == spec


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD.replace("max_steps: 7", "max_steps: -1"), "field 'limits.max_steps'"),
        (
            GOOD.replace("graph: tool_coder", "graph: reactive"),
            "field 'graph': Value error, unknown graph 'reactive'",
        ),
        (GOOD.replace("[shell, submit]", "[shell, telnet]"), "unknown tool 'telnet'"),
        (GOOD.replace("name: mine", "name: mine\ncolour: red"), "field 'colour'"),
        (GOOD.replace("reflections_k: 1", "reflections_k: many"), "field 'memory.reflections_k'"),
        (
            GOOD.replace("file:prompts/system.md.j2", "file:prompts/absent.md.j2"),
            "field 'prompts.system': cannot read",
        ),
        (GOOD.replace('"Call a tool."', '"{% if %}"'), "prompt 'format_error': Jinja syntax error"),
        (GOOD.replace("name: mine\n", ""), "field 'name'"),
        ("name: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "a YAML mapping"),
    ],
)
def test_bad_input_names_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = write_spec(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert str(path) in info.value.message
    assert field in info.value.message


def test_unknown_spec_name_lists_the_built_ins() -> None:
    with pytest.raises(ConfigError, match=r"no agent spec file 'nope\.yaml'") as info:
        load_spec("nope.yaml")
    assert "tool_coder" in (info.value.hint or "")


def test_variant_id_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    first = load_spec(write_spec(tmp_path))
    assert load_spec(write_spec(tmp_path)).variant_id() == first.variant_id()
    # Formatting and key order of the YAML do not matter, the content does.
    reordered = GOOD.replace("tools: [shell, submit]\n", "") + "tools:\n  - shell\n  - submit\n"
    assert load_spec(write_spec(tmp_path, reordered)).variant_id() == first.variant_id()
    changed_prompt_file = load_spec(write_spec(tmp_path, system="You are a coder."))
    assert changed_prompt_file.variant_id() != first.variant_id()
    changed_option = first.model_copy(update={"graph_options": {"temperature": 0.3}})
    assert changed_option.variant_id() != first.variant_id()
    assert len(first.variant_id()) == 16


def test_to_yaml_round_trips(tmp_path: Path) -> None:
    spec = load_spec("tool_coder")
    path = tmp_path / "copy.yaml"
    path.write_text(spec.to_yaml())
    assert load_spec(path) == spec and load_spec(path).variant_id() == spec.variant_id()


def test_built_in_specs_load() -> None:
    names = sorted(p.stem for p in SPECS_DIR.glob("*.yaml"))
    assert names == ["completion", "text_coder", "tool_coder", "web_agent"]
    for name in names:
        assert isinstance(load_spec(name), AgentSpec)


def test_default_spec_for_each_kind_of_model() -> None:
    function_task = Task(id="t", suite="s", instruction="i", metadata={"entry_point": "f"})
    repo_task = Task(id="t", suite="s", instruction="i", files={"a.py": ""})
    base = ScriptedModel([], supports_tools=False, is_base=True)
    assert default_spec_for(base).graph == "completion"
    assert default_spec_for(base, function_task).graph == "completion"
    assert default_spec_for(base, repo_task).graph == "text_coder"
    assert default_spec_for(ScriptedModel([], supports_tools=False)).graph == "text_coder"
    assert default_spec_for(ScriptedModel([])).graph == "tool_coder"


def test_save_writes_a_variant_folder_that_loads_back(tmp_path: Path) -> None:
    spec = load_spec("text_coder")
    path = spec.save(tmp_path / "variant")
    assert (tmp_path / "variant" / "prompts" / "system.md.j2").read_text() == spec.prompts["system"]
    assert "file:prompts/system.md.j2" in path.read_text()
    assert load_spec(path).variant_id() == spec.variant_id()


def test_with_changes_validates() -> None:
    spec = load_spec("tool_coder")
    changed = spec.with_changes(prompts={**spec.prompts, "system": "Be brief."})
    assert changed.prompts["system"] == "Be brief." and changed.variant_id() != spec.variant_id()
    with pytest.raises(ConfigError, match="field 'tools': Value error, unknown tool 'teleport'"):
        spec.with_changes(tools=["teleport"])
