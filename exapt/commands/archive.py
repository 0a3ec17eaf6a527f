"""``exapt archive list|show|best``: read what an evolution made, from its archive."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from exapt.evolve.archive import Archive

app = typer.Typer(help="Read evolution archives: list them, show one, export its best variant.")

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


def _open(name: str) -> Archive:
    from exapt.evolve.archive import Archive

    return Archive.open(name)


def overview(archive: Archive) -> dict[str, Any]:
    """One archive in a few numbers (a row of ``archive list``)."""
    entries = archive.entries()
    best = archive.best()
    config = archive.config
    run = archive.meta("run") or {}
    return {
        "name": archive.name,
        "suite": config.get("suite", ""),
        "model": config.get("model", ""),
        "entries": len(entries),
        "accepted": sum(e.status == "accepted" for e in entries),
        "generations": max((e.generation for e in entries), default=0),
        "best": best.variant_id if best else None,
        "best_score": best.score if best else None,
        "status": _live(run),
        "spend": archive.spend(),
        "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime(archive.meta("created", 0))),
    }


def _live(run: dict[str, Any]) -> str:
    """The saved status, except that a ``running`` run whose process is gone shows ``killed``."""
    import os
    import socket

    status = str(run.get("status", "unknown"))
    if status != "running" or run.get("host") != socket.gethostname():
        return status
    try:
        os.kill(int(run.get("pid", -1)), 0)
    except ProcessLookupError:
        return "killed"
    except (PermissionError, ValueError, OverflowError):
        pass
    return status


@app.command("list")
def list_archives(json_out: JsonFlag = False) -> None:
    """Every archive: suite, model, variants, accepted, best score, evaluations, status."""
    from rich.table import Table

    from exapt.commands.runs import make_console
    from exapt.evolve.archive import list_archives as names

    rows = []
    for name in names():
        with _open(name) as archive:
            rows.append(overview(archive))
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="archives")
    for col in ("name", "suite", "model", "variants", "accepted", "gens", "best", "evals",
                "cost", "status", "created"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        score = f"{r['best_score']:.3f}" if r["best_score"] is not None else "-"
        table.add_row(r["name"], r["suite"], r["model"], str(r["entries"]), str(r["accepted"]),
                      str(r["generations"]), score, str(r["spend"]["evaluations"]),
                      f"${r['spend']['cost_usd']:.4f}", r["status"], r["created"])  # fmt: skip
    make_console().print(table)


@app.command("show")
def show(name: str, json_out: JsonFlag = False) -> None:
    """One archive: its config, every variant (lineage, operator, status, score) and the
    held-out comparison."""
    from rich.table import Table

    from exapt.commands.runs import make_console

    with _open(name) as archive:
        data = {
            **overview(archive),
            "config": archive.config,
            "final": archive.meta("final"),
            "entries": [e.model_dump(mode="json", by_alias=True) for e in archive.entries()],
            "attempts": [a.model_dump(mode="json") for a in archive.attempts()],
        }
    if json_out:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    out = make_console()
    table = Table(title=f"archive {name} ({data['status']})")
    for col in ("variant", "gen", "parent", "operator", "status", "stage", "score", "n",
                "evals", "what"):  # fmt: skip
        table.add_column(col)
    for e in data["entries"]:
        parents = ",".join(p[:8] for p in e["parent_ids"]) or "-"
        what = e["reason"] if e["status"] in ("failed", "rejected") else e["description"]
        table.add_row(e["variant_id"], str(e["generation"]), parents, e["operator"], e["status"],
                      str(e["stage"]), f"{e['score']:.3f}", str(e["n_scored"]),
                      str(e["evaluations"]), (what or "")[:80])  # fmt: skip
    out.print(table)
    comparison = (data.get("final") or {}).get("comparison")
    if comparison:
        lo, hi = comparison["ci95"]
        out.print(
            f"held-out: best {comparison['mean_b']:.3f} vs seed {comparison['mean_a']:.3f} on "
            f"{comparison['n_tasks']} tasks, diff {comparison['diff']:+.3f} "
            f"[95% {lo:+.3f}, {hi:+.3f}]: {comparison['verdict']}",
            highlight=False,
        )


@app.command("best")
def best(
    name: str,
    export: Annotated[
        Path | None, typer.Option(help="write the best variant's folder to DIR", metavar="DIR")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """The best accepted variant: its entry and per-task scores; --export DIR writes it."""
    from exapt.commands.runs import make_console
    from exapt.errors import ConfigError

    with _open(name) as archive:
        entry = archive.best()
        if entry is None:
            raise ConfigError(f"archive {name!r} has no accepted variant yet")
        scores = {t: r.reward for t, r in sorted(archive.scores(entry.variant_id).items())}
        if export is not None:
            archive.variant(entry.variant_id).write(export)
    data = {**entry.model_dump(mode="json", by_alias=True), "task_scores": scores}
    if export is not None:
        data["exported_to"] = str(export)
    if json_out:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    out = make_console()
    out.print(
        f"best of {name}: [bold]{entry.variant_id}[/] (generation {entry.generation}, "
        f"{entry.operator}) score {entry.score:.3f} on {entry.n_scored} tasks",
        highlight=False,
    )
    if export is not None:
        out.print(f"exported to {export} (use it: exapt run --agent {export}/spec.yaml)")
