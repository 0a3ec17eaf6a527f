"""The ``exapt`` command. Each command group lives in ``exapt/commands/<group>.py``;
heavy libraries (torch, litellm, chromadb) are imported inside commands, not here, so
``exapt --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

import exapt  # noqa: F401  (sets the offline defaults before any library import)
from exapt.errors import ExaptError

app = typer.Typer(
    name="exapt",
    help="Agents that improve themselves: run, remember, evolve, fine-tune.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command groups register themselves here, one line each.
from exapt.commands import archive as _archive  # noqa: E402
from exapt.commands import doctor as _doctor  # noqa: E402
from exapt.commands import evolve as _evolve  # noqa: E402
from exapt.commands import improve as _improve  # noqa: E402
from exapt.commands import memory as _memory  # noqa: E402
from exapt.commands import policy as _policy  # noqa: E402
from exapt.commands import report as _report  # noqa: E402
from exapt.commands import run as _run  # noqa: E402
from exapt.commands import runs as _runs  # noqa: E402
from exapt.commands import sandbox as _sandbox  # noqa: E402
from exapt.commands import serve as _serve  # noqa: E402
from exapt.commands import variant as _variant  # noqa: E402

app.command("doctor")(_doctor.doctor)
app.add_typer(_sandbox.app, name="sandbox")
app.add_typer(_memory.app, name="memory")
app.command("run")(_run.run)
app.add_typer(_runs.app, name="runs")
app.command("evolve")(_evolve.evolve)
app.add_typer(_archive.app, name="archive")
app.command("report")(_report.report)
app.add_typer(_variant.app, name="variant")
app.add_typer(_policy.app, name="policy")
app.command("improve")(_improve.improve)
app.command("serve")(_serve.serve)


def main() -> None:
    """Entry point: user errors print their message and hint and exit 2, never a traceback."""
    try:
        app()
    except ExaptError as exc:
        err = Console(stderr=True)
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
