"""``exapt doctor``: which sandbox backends work on this machine, and what to do if not."""

from __future__ import annotations

import json
import sys

import typer


def doctor(json_: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Report which sandbox backends work here and why the others do not.

    Exit code 0 if an isolating backend (bwrap or docker) works, 1 otherwise.
    """
    from exapt.sandbox import available_backends

    backends = available_backends()
    default = next((n for n in ("bwrap", "docker") if backends.get(n) is None), None)
    report = {
        "default_backend": default,
        "backends": {
            name: {
                "ok": reason is None,
                "reason": reason,
                "isolation": name != "local",
            }
            for name, reason in backends.items()
        },
    }
    if json_:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="exapt doctor: sandbox backends")
        table.add_column("backend", style="bold")
        table.add_column("status")
        table.add_column("notes", overflow="fold")
        for name, reason in backends.items():
            if reason is not None:
                status, note = "[red]unavailable[/]", reason
            elif name == "local":
                status, note = "[yellow]ok[/]", "NOT isolation: only when asked for by name"
            else:
                status, note = "[green]ok[/]", "default" if name == default else ""
            table.add_row(name, status, note)
        Console().print(table)
    raise typer.Exit(0 if default else 1)
