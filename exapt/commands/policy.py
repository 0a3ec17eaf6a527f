"""``exapt policy list|show|promote|rollback|retire``: the LoRA policies under
``<home>/policies/`` (written by ``exapt improve``; served as ``policy:NAME``)."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from exapt.agents.models.policy import Policy

app = typer.Typer(help="LoRA policies: list, show, promote (held-out gate), roll back.")

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


def _summary(policy: Policy) -> dict[str, Any]:
    before = policy.metrics_before.get("pass_rate")
    after = policy.metrics_after.get("pass_rate")
    return {
        "name": policy.name,
        "line": policy.line,
        "status": policy.status,
        "parent": policy.parent,
        "base_model": policy.base_model,
        "method": policy.method,
        "lora_rank": policy.lora_rank,
        "dataset_hash": policy.dataset_hash,
        "heldout_before": before,
        "heldout_after": after,
        "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime(policy.created)),
    }


def _percent(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "-"


@app.command("list")
def list_policies(
    line: Annotated[str | None, typer.Option(help="only the policies of this line")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Every policy, oldest first: line, status, parent, method, held-out pass rate before
    (its parent) and after (itself)."""
    from rich.table import Table

    from exapt.commands.runs import make_console
    from exapt.evolve.policies import PolicyRegistry

    rows = [_summary(p) for p in PolicyRegistry().list(line)]
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="policies")
    for column in ("name", "line", "status", "parent", "method", "r", "held-out", "created"):
        table.add_column(column)
    for r in rows:
        status = {"promoted": "[green]promoted[/]", "retired": "[dim]retired[/]"}.get(
            r["status"], r["status"]
        )
        table.add_row(
            r["name"],
            r["line"],
            status,
            r["parent"] or "(base)",
            r["method"],
            str(r["lora_rank"]),
            f"{_percent(r['heldout_before'])} -> {_percent(r['heldout_after'])}",
            r["created"],
        )
    make_console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="a policy name, or a line (its promoted policy)")],
    json_out: JsonFlag = False,
) -> None:
    """One policy's whole record: base, adapter, dataset, hyper-parameters, training and
    held-out metrics, status history."""
    from exapt.agents.models.policy import find_policy

    policy = find_policy(name)
    record = policy.model_dump(mode="json", by_alias=True)
    record["adapter_dir"] = str(policy.adapter_dir)
    if json_out:
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return
    from exapt.commands.runs import make_console

    out = make_console()
    out.print(f"[bold]{policy.name}[/] ({policy.status}) line {policy.line}", highlight=False)
    for key in ("parent", "base_model", "base_checkpoint", "method", "lora_rank", "dataset_hash"):
        out.print(f"  {key}: {record[key]}", highlight=False)
    out.print(f"  adapter: {policy.adapter_dir}", highlight=False)
    for key in ("hyperparameters", "training", "metrics_before", "metrics_after"):
        out.print(f"  {key}: {json.dumps(record[key])}", highlight=False)
    for event in policy.history:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event["at"]))
        out.print(f"  {stamp} {event['status']}: {event['reason']}", highlight=False)


@app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="the policy to promote")],
    min_gain: Annotated[
        float, typer.Option(help="held-out pass rate it must gain over its parent (0: not worse)")
    ] = 0.0,
    force: Annotated[bool, typer.Option(help="promote without the held-out gate")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Make NAME its line's promoted policy (what `policy:LINE` serves) if its held-out pass
    rate is not worse than its parent's; the line's previous one is retired."""
    from exapt.evolve.policies import PolicyRegistry

    policy = PolicyRegistry().promote(name, min_gain=min_gain, force=force)
    _report(policy, json_out, f"promoted {policy.name} (line {policy.line})")


@app.command("rollback")
def rollback(
    line: Annotated[str, typer.Argument(help="a line, or one of its policies")],
    json_out: JsonFlag = False,
) -> None:
    """Retire the line's promoted policy and promote its parent again (or the base model)."""
    from exapt.evolve.policies import PolicyRegistry

    policy = PolicyRegistry().rollback(line)
    if json_out:
        data = policy.model_dump(mode="json", by_alias=True) if policy else None
        sys.stdout.write(json.dumps({"promoted": data}, indent=2) + "\n")
        return
    from exapt.commands.runs import make_console

    now = f"{policy.name} is promoted again" if policy else "the line is back on its base model"
    make_console().print(f"rolled back: {now}", highlight=False)


@app.command("retire")
def retire(
    name: Annotated[str, typer.Argument(help="the policy to retire")],
    json_out: JsonFlag = False,
) -> None:
    """Retire NAME (policy:NAME still serves it; policy:LINE no longer does)."""
    from exapt.evolve.policies import PolicyRegistry

    policy = PolicyRegistry().retire(name)
    _report(policy, json_out, f"retired {policy.name}")


def _report(policy: Policy, json_out: bool, message: str) -> None:
    if json_out:
        sys.stdout.write(json.dumps(policy.model_dump(mode="json", by_alias=True), indent=2) + "\n")
        return
    from exapt.commands.runs import make_console

    make_console().print(message, highlight=False)
