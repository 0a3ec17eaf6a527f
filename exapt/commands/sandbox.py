"""``exapt sandbox exec|build-image``: one command in a fresh sandbox; the docker image.

``exec`` prints the ``ExecResult`` (a table, or JSON with ``--json``) and exits with the
command's exit code (124 on timeout, as ``timeout(1)`` does), so it composes in scripts.
Bad input (unknown backend, a negative limit, a missing image) exits 2 via ``cli.main``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(
    help="Run commands in a sandbox; build the docker backend's image.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    cmd: Annotated[list[str], typer.Argument(help="the command and its arguments (after --)")],
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="bwrap, docker, local or default")
    ] = "default",
    timeout: Annotated[float | None, typer.Option(help="wall-clock seconds")] = None,
    memory_mb: Annotated[int | None, typer.Option("--memory-mb", help="memory limit in MB")] = None,
    image: Annotated[str | None, typer.Option(help="docker image")] = None,
    json_: Annotated[bool, typer.Option("--json", help="print the ExecResult as JSON")] = False,
) -> None:
    """Run CMD in a fresh sandbox and print what it did.

    Example: exapt sandbox exec --backend bwrap --timeout 5 -- python3 -c 'print(1)'
    """
    from pydantic import ValidationError

    from exapt.errors import ConfigError
    from exapt.sandbox import Limits, open_sandbox

    overrides: dict[str, float | int] = {}
    if timeout is not None:
        overrides["wall_s"] = timeout
    if memory_mb is not None:
        overrides["memory_mb"] = memory_mb
    try:
        limits = Limits(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = {"wall_s": "--timeout", "memory_mb": "--memory-mb"}.get(str(err["loc"][0]), "")
        raise ConfigError(
            f"{field} {err['input']!r}: {err['msg']}", hint="limits must be positive numbers"
        ) from exc
    # One word is a shell string (pipes, &&); several are an argv.
    command: str | list[str] = cmd[0] if len(cmd) == 1 else list(cmd)
    with open_sandbox(backend, limits=limits, image=image) as box:
        result = box.exec(command)
    if json_:
        sys.stdout.write(result.model_dump_json(by_alias=True, indent=2) + "\n")
    else:
        _print_table(result)
    code = 124 if result.timed_out else result.exit_code
    raise typer.Exit(code if 0 <= code < 256 else 128 + abs(code) % 128)


def _print_table(result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from exapt.sandbox import ExecResult

    assert isinstance(result, ExecResult)
    table = Table(title=f"exapt sandbox exec ({result.backend})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in ("exit_code", "timed_out", "oom_killed", "truncated"):
        table.add_row(key, str(getattr(result, key)))
    table.add_row("duration_s", f"{result.duration_s:.3f}")
    table.add_row("stdout", result.stdout.rstrip("\n"))
    table.add_row("stderr", result.stderr.rstrip("\n"))
    Console().print(table, highlight=False, markup=False)


@app.command("build-image")
def build_image(
    name: Annotated[str, typer.Option("--name", help="image name")] = "exapt-sandbox:latest",
    mirror: Annotated[
        str | None, typer.Option(help="Debian mirror (default: the one apt uses)")
    ] = None,
    suite: Annotated[str, typer.Option(help="Debian suite")] = "bookworm",
    include: Annotated[
        list[str] | None, typer.Option("--include", help="extra Debian packages (repeatable)")
    ] = None,
) -> None:
    """Build the docker backend's image locally (debootstrap + docker import; root, ~1-2 min)."""
    from rich.console import Console

    from exapt.sandbox.image import build_image as build

    console = Console(stderr=True)
    build(name, suite=suite, mirror=mirror, include=include or (), log=console.print)
    print(name)
