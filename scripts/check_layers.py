#!/usr/bin/env python3
"""Check exapt's import layers (``lint-imports``) and, with ``--mypy``, its types.

The package is laid out with ``package-dir`` (``agents/`` is ``exapt.agents`` ...), which
import-linter and mypy cannot follow: both look for ``exapt/agents/``. So the package is
staged first as one tree — each folder copied to its import path, as the wheel lays it
out — in ``<root>/.cache/package`` (file times kept, so mypy's cache stays warm), and both
tools run on the staged tree; paths in their messages are mapped back to the sources.

Usage: python scripts/check_layers.py [--root DIR] [--mypy]
Exit status: 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stage(root: Path, target: Path) -> dict[str, str]:
    """Copy the package of ``root`` into ``target`` by its import layout; return the map
    from staged folders to source folders (for messages)."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    dirs: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    if target.exists():
        shutil.rmtree(target)
    mapping = {}
    for package, source in sorted(dirs.items(), key=lambda kv: kv[0].count(".")):
        staged = target.joinpath(*package.split("."))
        nested = {Path(s).name for p, s in dirs.items() if p.startswith(package + ".")}
        shutil.copytree(
            root / source,
            staged,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *sorted(nested)),
            dirs_exist_ok=True,
        )
        mapping[str(staged.relative_to(target))] = source
    shutil.copy2(root / "pyproject.toml", target / "pyproject.toml")
    return mapping


def run(argv: list[str], cwd: Path, mapping: dict[str, str], root: Path) -> int:
    """Run one checker in the staged tree, its output shown with source paths."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    # longest staged path first: exapt/agents before exapt
    for staged, source in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(str(cwd / staged), str(root / source))
        out = out.replace(staged + "/", f"{source}/" if source != staged else staged + "/")
    sys.stdout.write(out)
    return proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to check")
    parser.add_argument("--mypy", action="store_true", help="also type-check the package")
    args = parser.parse_args()
    root = args.root.resolve()
    target = root / ".cache" / "package"
    mapping = stage(root, target)
    # lint-imports' own entry point, run by this interpreter (whatever venv it is in)
    lint = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    status = run([sys.executable, "-c", lint, "--no-cache"], target, mapping, root)
    if args.mypy:
        cache = root / ".cache" / "mypy"
        argv = [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "-p", "exapt"]
        status |= run(argv, target, mapping, root)
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main())
