"""Variants as folders: the tree id, loading, and what a variant may not hold."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from exapt.agents import load_spec
from exapt.errors import ConfigError
from exapt.evolve.variant import Variant, from_components, tree_hash


@pytest.mark.parametrize("name", ["completion", "tool_coder", "text_coder"])
def test_builtin_round_trips_through_a_folder(name: str, tmp_path: Path) -> None:
    seed = Variant.from_spec(load_spec(name))
    folder = seed.write(tmp_path / "v")
    again = Variant.from_dir(folder)
    assert again.id == seed.id
    spec = again.load_spec()
    assert spec.prompts == load_spec(name).prompts and spec.graph == load_spec(name).graph


def test_id_is_the_tree_not_mtimes_or_order(tmp_path: Path) -> None:
    files = {"spec.yaml": b"name: a\ngraph: completion\n", "prompts/x.md.j2": b"hi"}
    a = Variant(files)
    b = Variant(dict(reversed(list(files.items()))))
    assert a.id == b.id == tree_hash(files)
    folder = a.write(tmp_path / "v")
    os.utime(folder / "spec.yaml", (time.time() - 1e6, time.time() - 1e6))
    assert Variant.from_dir(folder).id == a.id
    # Any byte, any path, any extra file changes the id; paths and contents cannot be traded.
    assert Variant({**files, "prompts/x.md.j2": b"hi!"}).id != a.id
    assert Variant({**files, "notes.txt": b""}).id != a.id
    assert tree_hash({"ab": b"c"}) != tree_hash({"a": b"bc"})


def test_changed_copies_change_the_id_and_keep_the_rest() -> None:
    seed = Variant.from_spec(load_spec("completion"))
    child = seed.with_options(temperature=0.4)
    assert child.id != seed.id and child.options()["temperature"] == 0.4
    assert child.prompt("completion") == seed.prompt("completion")
    edited = seed.with_prompt("completion", "{{ prompt }}")
    assert edited.load_spec().prompts["completion"] == "{{ prompt }}"
    assert "+{{ prompt }}" in edited.diff(seed) and "spec.yaml" not in edited.diff(seed)
    assert from_components(seed, child.components()).id == child.id


def test_write_refuses_to_overwrite_another_variant(tmp_path: Path) -> None:
    seed = Variant.from_spec(load_spec("completion"))
    seed.write(tmp_path / "v")
    seed.write(tmp_path / "v")  # the same tree again: fine
    with pytest.raises(ConfigError, match="holds another variant"):
        seed.with_options(samples=2).write(tmp_path / "v")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def hostile(tmp_path: Path, spec: str, **files: str) -> Variant:
    folder = tmp_path / "h"
    (folder / "prompts").mkdir(parents=True)
    (folder / "spec.yaml").write_text(spec)
    for name, text in files.items():
        (folder / "prompts" / name).write_text(text)
    return Variant.from_dir(folder)


def test_a_prompt_file_outside_the_variant_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("API_KEY=sk-123")
    for ref in ["../secret.txt", str(secret), "prompts/../../secret.txt"]:
        v = hostile(tmp_path, f"name: h\ngraph: completion\nprompts:\n  completion: file:{ref}\n")
        with pytest.raises(ConfigError, match="relative POSIX paths"):
            v.load_spec()
        import shutil

        shutil.rmtree(tmp_path / "h")


def test_a_symlink_in_a_variant_folder_is_refused(tmp_path: Path) -> None:
    folder = Variant.from_spec(load_spec("completion")).write(tmp_path / "v")
    (folder / "prompts" / "leak.md.j2").symlink_to("/etc/passwd")
    with pytest.raises(ConfigError, match="symlinks"):
        Variant.from_dir(folder)


@pytest.mark.parametrize(
    ("graph", "tools"),
    [("os:system", "[]"), ("exapt.agents.graphs.completion:build", "[]"),
     ("completion", "[os.system]")],
)  # fmt: skip
def test_host_code_by_dotted_path_is_refused(tmp_path: Path, graph: str, tools: str) -> None:
    v = hostile(tmp_path, f"name: h\ngraph: {graph}\ntools: {tools}\nprompts:\n  completion: x\n")
    with pytest.raises(ConfigError, match="built-in"):
        v.load_spec()


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ task.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ task | attr('__class__') }}",
        "{{ lipsum() }}",
        "{{ task.files.items() }}",
        "{% set x = 1 %}{{ x }}",
        "{% import 'memory' as m %}",
        "{{ task['__class__'] }}",
        "{{ tools | map(attribute='__class__') | list }}",
        "{% include task.id %}",
    ],
)
def test_prompts_that_could_run_host_code_are_refused(tmp_path: Path, template: str) -> None:
    v = Variant.from_spec(load_spec("completion")).with_prompt("completion", template)
    with pytest.raises(ConfigError, match="prompt 'completion'"):
        v.load_spec()


def test_ordinary_prompt_features_pass() -> None:
    text = (
        "{% if failed %}{{ failed.feedback | comment }}{% endif %}"
        "{% for t in tools %}{{ t.name }}{% if not loop.last %}, {% endif %}{% endfor %}"
        '{{ "%.2f" | format(0.5) }}{{ task.files | list | join(", ") }}{{ prompt }}'
    )
    Variant.from_spec(load_spec("completion")).with_prompt("completion", text).load_spec()
