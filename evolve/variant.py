"""``Variant``: an agent as a directory — ``spec.yaml``, ``prompts/*.md.j2``, optional files.

A variant's id is the hash of its whole file tree: every file's relative POSIX path and
bytes, in sorted order (no mtimes, no permissions), so equal trees have equal ids on every
machine. ``AgentSpec.variant_id()`` hashes the loaded spec's fields only; this id also
covers files the spec does not read (exemplars, code, notes).

A variant is an immutable mapping path -> bytes in memory; operators make changed copies
(``with_prompt``, ``with_spec_data``, ``with_files``) and ``write`` puts one on disk
atomically (a temporary folder renamed into place).

What a variant may hold is checked on load (``Variant.check`` and ``load_spec``), because
its files come from operators, a mutator model or a hand-edited archive folder:

- paths are relative, inside the tree, without symlinks (``from_dir`` refuses them);
- ``spec.yaml`` prompts are inline or ``file:PATH`` *inside* the variant (no ``..``, no
  absolute path: a prompt must never read a host file and send it to a model);
- ``graph`` is a built-in graph and ``tools`` are built-in tools: a dotted path would
  import and run arbitrary host code in the exapt process. Variant code runs in the
  sandbox, which the self-modifying issue (11) adds;
- prompts pass ``safety.check_template`` (they are rendered in the exapt process).

Example:
    seed = Variant.from_spec(load_spec("completion"))
    child = seed.with_options(temperature=0.4)
    child.id != seed.id; child.write(folder); Variant.from_dir(folder).id == child.id
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from exapt.errors import ConfigError
from exapt.evolve.safety import check_template

if TYPE_CHECKING:
    from exapt.agents.spec import AgentSpec

SPEC_FILE = "spec.yaml"
PROMPTS_DIR = "prompts"
PROMPT_SUFFIX = ".md.j2"
#: Largest variant tree accepted (all files together): variants are text, not datasets.
MAX_TREE_BYTES = 4 * 1024 * 1024


def tree_hash(files: Mapping[str, bytes]) -> str:
    """The id of a file tree: SHA-256 over (path, bytes) pairs in sorted path order, each
    length-prefixed so that no two different trees give the same byte stream; 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(files):
        for part in (path.encode(), files[path]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()[:16]


def _check_path(path: str) -> str:
    rel = PurePosixPath(path)
    if not path or rel.is_absolute() or ".." in rel.parts or rel.as_posix() != path:
        raise ConfigError(
            f"variant file {path!r}: paths must be relative POSIX paths inside the variant",
            hint="no absolute paths, no '..', no './' or '//'",
        )
    return path


class Variant:
    """An immutable file tree that defines one agent (see the module docstring)."""

    __slots__ = ("_files", "_id")

    def __init__(self, files: Mapping[str, bytes | str]) -> None:
        data = {
            _check_path(p): (b.encode() if isinstance(b, str) else bytes(b))
            for p, b in files.items()
        }
        if SPEC_FILE not in data:
            raise ConfigError(f"a variant needs a {SPEC_FILE} (it has {sorted(data)[:5]})")
        if sum(len(b) for b in data.values()) > MAX_TREE_BYTES:
            raise ConfigError(f"variant tree is larger than {MAX_TREE_BYTES} bytes")
        self._files = dict(sorted(data.items()))
        self._id = tree_hash(self._files)

    # --- identity and contents ---------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def files(self) -> dict[str, bytes]:
        return dict(self._files)

    def text(self, path: str) -> str:
        return self._files[path].decode("utf-8", errors="replace")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variant) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __repr__(self) -> str:
        return f"Variant({self._id}, {len(self._files)} files)"

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: AgentSpec) -> Variant:
        """The variant of a loaded spec: ``spec.yaml`` with every prompt in ``prompts/``."""
        with tempfile.TemporaryDirectory(prefix="exapt-variant-") as tmp:
            spec.save(tmp)
            return cls.from_dir(tmp)

    @classmethod
    def from_dir(cls, folder: str | Path) -> Variant:
        """Read a variant folder. ``ConfigError`` for a missing ``spec.yaml``, a symlink or a
        special file in it (a variant is plain files only)."""
        root = Path(folder)
        if not (root / SPEC_FILE).is_file():
            raise ConfigError(
                f"{root} is not a variant folder: it has no {SPEC_FILE}",
                hint="make one with `exapt variant export NAME DIR`",
            )
        files: dict[str, bytes] = {}
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in [*dirnames, *filenames]:
                if (here / name).is_symlink():
                    raise ConfigError(f"{here / name}: a variant may not hold symlinks")
            for name in filenames:
                path = here / name
                if not path.is_file():
                    raise ConfigError(f"{path}: a variant holds regular files only")
                files[path.relative_to(root).as_posix()] = path.read_bytes()
        return cls(files)

    @classmethod
    def from_source(cls, source: str | Path) -> Variant:
        """A variant from a folder, a spec YAML file or a built-in spec name."""
        path = Path(source)
        if path.is_dir():
            return cls.from_dir(path)
        from exapt.agents import load_spec

        return cls.from_spec(load_spec(source))

    def write(self, folder: str | Path) -> Path:
        """Write the tree to ``folder`` atomically: into a sibling temporary folder, then
        renamed into place. An existing folder with the same id is left as it is; one with
        other contents is an error (nothing is overwritten)."""
        target = Path(folder)
        if target.exists():
            if Variant.from_dir(target).id == self.id:
                return target
            raise ConfigError(f"{target} exists and holds another variant", hint="pick a new DIR")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            for rel, data in self._files.items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    # --- the spec ----------------------------------------------------------------------

    def spec_data(self) -> dict[str, Any]:
        """``spec.yaml`` as a mapping (prompts as written: inline text or ``file:PATH``)."""
        try:
            data = yaml.safe_load(self.text(SPEC_FILE))
        except yaml.YAMLError as exc:
            raise ConfigError(f"variant {self.id}: {SPEC_FILE} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"variant {self.id}: {SPEC_FILE} must be a mapping")
        return data

    def prompt_names(self) -> list[str]:
        prompts = self.spec_data().get("prompts") or {}
        return sorted(prompts) if isinstance(prompts, dict) else []

    def prompt_file(self, name: str) -> str | None:
        """The variant path of prompt ``name`` when it is a ``file:`` prompt, else None."""
        value = (self.spec_data().get("prompts") or {}).get(name)
        if isinstance(value, str) and value.startswith("file:"):
            return _check_path(PurePosixPath(value.removeprefix("file:").strip()).as_posix())
        return None

    def prompt(self, name: str) -> str:
        """The text of prompt ``name`` (``KeyError`` if the spec has no such prompt)."""
        prompts = self.spec_data().get("prompts") or {}
        if name not in prompts:
            raise KeyError(name)
        path = self.prompt_file(name)
        return self.text(path) if path is not None else str(prompts[name])

    def options(self) -> dict[str, Any]:
        return dict(self.spec_data().get("graph_options") or {})

    def check(self) -> None:
        """Refuse what a variant may not do (module docstring): ``ConfigError`` naming it."""
        from exapt.agents.spec import KNOWN_GRAPHS
        from exapt.tools.base import KNOWN_TOOLS

        data = self.spec_data()
        graph = data.get("graph")
        if graph not in KNOWN_GRAPHS:
            raise ConfigError(
                f"variant {self.id}: graph {graph!r} is not a built-in graph",
                hint=f"variants use one of {sorted(KNOWN_GRAPHS)}; variant code running in the "
                "sandbox comes with the self-modifying operator",
            )
        for tool in data.get("tools") or []:
            if tool not in KNOWN_TOOLS:
                raise ConfigError(f"variant {self.id}: tool {tool!r} is not a built-in tool")
        for name in self.prompt_names():
            path = self.prompt_file(name)
            if path is not None and path not in self._files:
                raise ConfigError(f"variant {self.id}: prompt {name!r} names {path}, not in it")
            try:
                check_template(name, self.prompt(name))
            except ConfigError as exc:
                raise ConfigError(f"variant {self.id}: {exc.message}", hint=exc.hint) from exc

    def load_spec(self) -> AgentSpec:
        """The ``AgentSpec`` of this variant (checked first; ``ConfigError`` if bad)."""
        return _load_spec(self)

    # --- changed copies ----------------------------------------------------------------

    def with_files(self, changes: Mapping[str, bytes | str | None]) -> Variant:
        """A copy with ``changes`` applied (a value of None deletes the file)."""
        files: dict[str, bytes | str] = dict(self._files)
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = data
        return Variant(files)

    def with_spec_data(self, data: dict[str, Any]) -> Variant:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        return self.with_files({SPEC_FILE: text})

    def with_options(self, **options: Any) -> Variant:
        """A copy whose ``graph_options`` are updated with ``options``."""
        data = self.spec_data()
        data["graph_options"] = {**(data.get("graph_options") or {}), **options}
        return self.with_spec_data(data)

    def with_prompt(self, name: str, text: str) -> Variant:
        """A copy with prompt ``name`` set to ``text`` (kept in, or added as,
        ``prompts/<name>.md.j2``)."""
        data = self.spec_data()
        prompts = dict(data.get("prompts") or {})
        path = self.prompt_file(name) or f"{PROMPTS_DIR}/{name}{PROMPT_SUFFIX}"
        prompts[name] = f"file:{path}"
        data["prompts"] = prompts
        spec_text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        return self.with_files({SPEC_FILE: spec_text, path: text})

    # --- comparison ----------------------------------------------------------------------

    def components(self) -> dict[str, str]:
        """The parts operators recombine, by name: ``prompt:<name>`` (text),
        ``option:<key>`` and ``spec:<field>`` (YAML of the value), ``file:<path>`` (other
        files). Two variants with equal components are the same agent."""
        data = self.spec_data()
        parts: dict[str, str] = {}
        prompt_paths = set()
        for name in self.prompt_names():
            parts[f"prompt:{name}"] = self.prompt(name)
            if (path := self.prompt_file(name)) is not None:
                prompt_paths.add(path)
        for key, value in (data.get("graph_options") or {}).items():
            parts[f"option:{key}"] = _dump(value)
        for key, value in data.items():
            if key not in ("prompts", "graph_options"):
                parts[f"spec:{key}"] = _dump(value)
        for path in self._files:
            if path != SPEC_FILE and path not in prompt_paths:
                parts[f"file:{path}"] = self.text(path)
        return parts

    def diff(self, other: Variant | None) -> str:
        """A unified diff of ``other`` (the parent; None = empty) -> this variant, by file."""
        before = other._files if other is not None else {}
        chunks: list[str] = []
        for path in sorted(set(before) | set(self._files)):
            a = before.get(path, b"").decode("utf-8", errors="replace")
            b = self._files.get(path, b"").decode("utf-8", errors="replace")
            if a == b:
                continue
            chunks.extend(
                difflib.unified_diff(
                    a.splitlines(keepends=True),
                    b.splitlines(keepends=True),
                    fromfile=f"a/{path}" if path in before else "/dev/null",
                    tofile=f"b/{path}" if path in self._files else "/dev/null",
                )
            )
        return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=True).strip()


def from_components(base: Variant, parts: Mapping[str, str]) -> Variant:
    """``base`` with its components replaced by ``parts`` (as ``Variant.components`` names
    them); a component missing from ``parts`` is removed."""
    data = base.spec_data()
    for key in list(data):
        if key not in ("prompts", "graph_options") and f"spec:{key}" not in parts:
            del data[key]
    if "prompts" not in data:
        data["prompts"] = {}
    options: dict[str, Any] = {}
    prompts: dict[str, str] = {}
    files: dict[str, bytes | str] = {}
    for name, text in parts.items():
        kind, _, key = name.partition(":")
        if kind == "option":
            options[key] = yaml.safe_load(text)
        elif kind == "spec":
            data[key] = yaml.safe_load(text)
        elif kind == "prompt":
            path = f"{PROMPTS_DIR}/{key}{PROMPT_SUFFIX}"
            prompts[key] = f"file:{path}"
            files[path] = text
        elif kind == "file":
            files[key] = text
        else:
            raise ConfigError(f"unknown variant component {name!r}")
    # Keys in the base's order, new ones after: equal components give an equal spec.yaml.
    data["prompts"] = _ordered(prompts, base.spec_data().get("prompts") or {})
    data["graph_options"] = _ordered(options, base.spec_data().get("graph_options") or {})
    files[SPEC_FILE] = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return Variant(files)


def _ordered(values: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    first = [k for k in like if k in values]
    return {k: values[k] for k in [*first, *sorted(set(values) - set(first))]}


@functools.lru_cache(maxsize=512)
def _load_spec(variant: Variant) -> AgentSpec:
    # Loaded through exapt.agents.load_spec from a private copy of the tree, so a variant
    # means exactly what the same folder means to `exapt run --agent DIR/spec.yaml`.
    from exapt.agents import load_spec

    variant.check()
    with tempfile.TemporaryDirectory(prefix="exapt-variant-") as tmp:
        for rel, data in variant.files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return load_spec(Path(tmp) / SPEC_FILE)
