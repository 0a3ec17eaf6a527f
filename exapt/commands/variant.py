"""``exapt variant export|id``: agents as variant folders (``spec.yaml`` + ``prompts/``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Agent variants as folders: export a spec, print a folder's id.")


@app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="built-in spec (tool_coder, text_coder, "
                                        "completion), a spec YAML or a variant folder")],
    directory: Annotated[Path, typer.Argument(help="new folder to write")],
    json_out: Annotated[bool, typer.Option("--json", help="print JSON on stdout")] = False,
) -> None:  # fmt: skip
    """Write an agent as a variant folder (prompts as files); prints its id.

    Example: exapt variant export completion my_agent/
    """
    from exapt.errors import ConfigError
    from exapt.evolve.variant import Variant

    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} exists and is not empty", hint="give a new folder")
    if directory.exists():
        directory.rmdir()
    variant = Variant.from_source(name)
    variant.write(directory)
    if json_out:
        data = {"variant_id": variant.id, "path": str(directory), "files": sorted(variant.files)}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        print(f"{variant.id}  {directory}  ({len(variant.files)} files)")


@app.command("id")
def variant_id(
    directory: Annotated[Path, typer.Argument(help="a variant folder")],
) -> None:
    """Print the id (hash of the file tree) of a variant folder, after checking it loads."""
    from exapt.evolve.variant import Variant

    variant = Variant.from_dir(directory)
    variant.load_spec()
    print(variant.id)
