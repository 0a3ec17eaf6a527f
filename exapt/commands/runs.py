"""``exapt runs list|show|export``: read what runs did, from the trajectory store."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from exapt.memory.trajectories import RunRecord, TrajectoryStore
    from exapt.records import Step, Trajectory

app = typer.Typer(help="Read past runs: list them, show tasks and steps, export trajectories.")

JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


def make_console(stderr: bool = False) -> Console:
    """A rich console; wide when not a terminal, so piped tables keep whole run ids."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=200)


def _store() -> TrajectoryStore:
    from exapt.memory.trajectories import TrajectoryStore

    return TrajectoryStore()


def _get_run(store: TrajectoryStore, run_id: str) -> RunRecord:
    from exapt.errors import ConfigError

    record = store.get_run(run_id)
    if record is None:
        known = [r.run_id for r in store.list_runs()[:5]]
        raise ConfigError(
            f"no run {run_id!r} in {store.path}",
            hint=f"recent runs: {', '.join(known)}" if known else "start one with `exapt run`",
        )
    return record


def status_of(record: RunRecord) -> str:
    from exapt.memory.trajectories import live_status

    return live_status(record)


def _row(record: RunRecord) -> dict[str, Any]:
    summary, config = record.summary or {}, record.config
    n_tasks = summary.get("n_tasks", record.n_trajectories)
    n_passed = summary.get("n_passed", record.n_passed)
    return {
        "run_id": record.run_id,
        "suite": summary.get("suite", config.get("suite", "")),
        "model": summary.get("model", config.get("model", "")),
        "n_tasks": n_tasks,
        "n_passed": n_passed,
        "pass_rate": summary.get("pass_rate", n_passed / n_tasks if n_tasks else 0.0),
        "cost_usd": summary.get("cost_usd", 0.0),
        "status": status_of(record),
        "created": time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.created)),
    }


@app.command("list")
def list_runs(json_out: JsonFlag = False) -> None:
    """Every run, newest first: suite, model, tasks, pass rate, cost, status, date (UTC)."""
    from rich.table import Table

    rows = [_row(r) for r in _store().list_runs()]
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        make_console().print("no runs yet: start one with `exapt run --suite ...`")
        return
    table = Table()
    for name in ("run_id", "suite", "model", "tasks", "pass rate", "cost", "status", "date"):
        table.add_column(
            name, justify="right" if name in ("tasks", "pass rate", "cost") else "left"
        )
    for r in rows:
        table.add_row(
            r["run_id"],
            r["suite"],
            r["model"],
            str(r["n_tasks"]),
            f"{r['pass_rate']:.1%}",
            f"${r['cost_usd']:.4f}",
            r["status"],
            r["created"],
        )
    make_console().print(table)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="a run id from `exapt runs list`")],
    task: Annotated[str | None, typer.Option(help="show this task's attempts step by step")] = None,
    full: Annotated[bool, typer.Option("--full", help="do not shorten long messages")] = False,
    json_out: JsonFlag = False,
) -> None:
    """A run's summary and per-task table; with --task, every step of that task's attempts."""
    from exapt.errors import ConfigError

    store = _store()
    record = _get_run(store, run_id)
    trajectories = store.trajectories(run_id, task, with_steps=task is not None)
    if task is not None and not trajectories:
        raise ConfigError(
            f"run {run_id!r} has no attempt of task {task!r}",
            hint="see its tasks with `exapt runs show " + run_id + "`",
        )
    if json_out:
        data = {
            **record.model_dump(),
            "status": status_of(record),
            "trajectories": [t.model_dump(mode="json", by_alias=True) for t in trajectories],
        }
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    out = make_console()
    _print_summary(out, record)
    _print_tasks(out, trajectories)
    for t in trajectories if task is not None else []:
        _print_steps(out, t, limit=None if full else 1500)


@app.command("export")
def export(
    run_id: Annotated[str, typer.Argument(help="the run to export")],
    path: Annotated[Path, typer.Argument(help="the JSONL file to write")],
    all_attempts: Annotated[
        bool, typer.Option("--all", help="also failed attempts (default: passed only)")
    ] = False,
) -> None:
    """Write the run's trajectories as fine-tuning JSONL: OpenAI chat records
    ({"messages", "tools"}, with tool calls) or {"prompt", "completion"} records."""
    from exapt.memory.trajectory_export import export_jsonl

    store = _store()
    _get_run(store, run_id)
    n = export_jsonl(store, path, run_id, passed_only=not all_attempts)
    make_console(stderr=True).print(f"wrote {n} records to {path}", highlight=False)


def _print_summary(console: Console, record: RunRecord) -> None:
    summary = record.summary or {}
    console.print(f"[bold]run {record.run_id}[/]  status {status_of(record)}", highlight=False)
    keys = (
        "suite",
        "split",
        "model",
        "agent",
        "variant_id",
        "sandbox",
        "trials",
        "n_tasks",
        "n_passed",
        "pass_rate",
        "per_trial",
        "tokens_in",
        "tokens_out",
        "cost_usd",
        "wall_s",
        "stop_detail",
        "error",
    )
    for key in keys:
        value = summary.get(key, record.config.get(key))
        if value is None:
            continue
        if key == "pass_rate":
            value = f"{value:.1%}"
        elif key == "per_trial":
            value = ", ".join(f"{v:.1%}" for v in value)
        console.print(f"  {key:<11} {value}", highlight=False)


def _print_tasks(console: Console, trajectories: list[Trajectory]) -> None:
    from rich.table import Table

    table = Table()
    for name in ("task", "trial", "result", "reward", "tokens", "cost", "wall", "stop", "error"):
        table.add_column(name)
    for t in trajectories:
        table.add_row(
            t.task_id,
            str(t.trial),
            "[green]pass[/]" if t.result.passed else "[red]fail[/]",
            f"{t.result.reward:.2f}",
            f"{t.tokens_in + t.tokens_out:,}",
            f"${t.cost_usd:.4f}",
            f"{t.wall_s:.1f}s",
            t.result.stop_reason,
            _cut(t.result.error or "", 60),
        )
    console.print(table)


def _print_steps(console: Console, t: Trajectory, limit: int | None) -> None:
    """Every step of one attempt: what the model was sent (the newest message), what it
    answered (text and tool calls), what the tools observed; then the score's feedback."""
    from rich.rule import Rule

    console.print(Rule(f"{t.task_id} — trial {t.trial} — variant {t.variant_id} — {t.model}"))
    for i, step in enumerate(t.steps):
        head = f"[bold cyan]{i:>3} {step.kind}[/]"
        cost = f"  [dim]{step.tokens_in}+{step.tokens_out} tok, {step.duration_s:.1f}s[/]"
        console.print(head + cost, highlight=False)
        for label, text in _describe(step):  # markup off: agents write [brackets] freely
            text = _cut(text, limit).replace("\n", "\n" + " " * 8)
            console.print(f"      {label}: {text}", highlight=False, markup=False)
    verdict = "PASSED" if t.result.passed else "FAILED"
    console.print(
        f"score: {verdict} reward {t.result.reward:.2f}, stop {t.result.stop_reason}",
        highlight=False,
        markup=False,
    )
    if t.result.feedback:
        console.print("feedback: " + _cut(t.result.feedback, limit), highlight=False, markup=False)
    if t.result.error:
        console.print("error: " + t.result.error, highlight=False, markup=False)


def _describe(step: Step) -> list[tuple[str, str]]:
    """(label, text) lines for one step, whatever shape its input and output have."""
    inp, out = step.input, step.output
    lines: list[tuple[str, str]] = []
    if step.kind == "model":
        if isinstance(inp, dict) and inp.get("messages"):
            last = inp["messages"][-1]
            lines.append(
                (
                    f"sent ({len(inp['messages'])} msgs) last {last.get('role')}",
                    _content(last.get("content")),
                )
            )
        elif isinstance(inp, dict) and "prompt" in inp:
            lines.append(("prompt", str(inp["prompt"])))
        if isinstance(out, dict):
            if out.get("content"):
                lines.append(("reply", _content(out["content"])))
            for call in out.get("tool_calls") or []:
                fn = call.get("function", call)
                lines.append(("tool call", f"{fn.get('name')}({fn.get('arguments')})"))
        elif out is not None:
            lines.append(("reply", str(out)))
    elif step.kind == "tool":
        if isinstance(inp, dict):
            lines.append(("call", f"{inp.get('name')}({json.dumps(inp.get('arguments'))})"))
        lines.append(("observation", out if isinstance(out, str) else json.dumps(out)))
    else:
        if inp is not None:
            lines.append(("input", inp if isinstance(inp, str) else json.dumps(inp, default=str)))
        if out is not None:
            lines.append(("output", out if isinstance(out, str) else json.dumps(out, default=str)))
    return lines


def _content(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more chars; --full shows all]"
