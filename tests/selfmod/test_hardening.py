"""What a spec or variant file may make the exapt process do: read no host file into a
prompt, run no template code, import no host module."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.agents.spec import load_spec
from exapt.agents.templates import render
from exapt.errors import ConfigError
from exapt.evolve.variant import Variant


def spec_file(folder: Path, prompt: str, graph: str = "tool_coder") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(f"name: s\ngraph: {graph}\nprompts:\n  system: {prompt!r}\n")
    return path


@pytest.mark.parametrize("prompt", ["file:../secret.txt", "file:/etc/hostname", "file:link.txt"])
def test_file_prompts_stay_in_the_spec_folder(tmp_path: Path, prompt: str) -> None:
    (tmp_path / "secret.txt").write_text("the host's secret")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ConfigError, match="outside the spec's folder"):
        load_spec(spec_file(tmp_path / "v", prompt))


def test_file_prompts_inside_the_folder_load(tmp_path: Path) -> None:
    (tmp_path / "v" / "prompts").mkdir(parents=True)
    (tmp_path / "v" / "prompts" / "s.md").write_text("Hello {{ task.id }}")
    spec = load_spec(spec_file(tmp_path / "v", "file:prompts/s.md"))
    assert spec.prompts["system"] == "Hello {{ task.id }}"
    assert load_spec("tool_coder").prompts["system"]  # built-ins read ../prompts of agents/


@pytest.mark.parametrize(
    "template",
    [
        "{{ x.__class__.__mro__ }}",
        "{{ f.__globals__ }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ x.format_map }}{{ '{0.__class__}'.format(x) }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_prompts_render_sandboxed(template: str) -> None:
    with pytest.raises(ConfigError):
        render({"p": template}, "p", "s", x=1, f=render)


def test_sandboxed_prompts_still_render_what_prompts_use() -> None:
    out = render(
        {"p": "{% for t in tools %}{{ t.name | upper }} {% endfor %}{{ task.id }}{% include 'q' %}",
         "q": "{{ code | comment }}"},
        "p", "s", tools=[type("T", (), {"name": "shell"})()], task={"id": "t1"}, code="a\nb",
    )  # fmt: skip
    assert out == "SHELL t1# a\n# b"


HOST_GRAPHS = ["os:system", "exapt.agents.graphs.completion:build", "../agent.py:build",
               "/tmp/agent.py:build", "agent.py"]  # fmt: skip


@pytest.mark.parametrize("graph", HOST_GRAPHS)
def test_variants_never_name_host_code(tmp_path: Path, graph: str) -> None:
    v = Variant({"spec.yaml": f"name: h\ngraph: {graph}\nprompts: {{}}\n", "agent.py": "x = 1\n"})
    with pytest.raises(ConfigError):
        v.load_spec()


def test_a_variant_with_its_own_graph_loads(tmp_path: Path) -> None:
    v = Variant({"spec.yaml": "name: h\ngraph: agent.py:build\nprompts: {}\n",
                 "agent.py": "def build(spec): ...\n"})  # fmt: skip
    spec = v.load_spec()
    assert spec.carries_code and spec.code == {"agent.py": "def build(spec): ...\n"}
    missing = Variant({"spec.yaml": "name: h\ngraph: other.py:build\nprompts: {}\n"})
    with pytest.raises(ConfigError, match="lacks"):
        missing.load_spec()
    inline = Variant({"spec.yaml": "name: h\ngraph: agent.py:build\ncode: {agent.py: x}\n",
                      "agent.py": "x"})  # fmt: skip
    with pytest.raises(ConfigError, match="inline"):
        inline.load_spec()
