"""``exapt run``: an agent on a suite, with live progress, a results table and summary.json.

The run lives in ``exapt.engine`` (``Run`` over the ``Engine``); this module only turns
flags into a ``RunConfig``, draws progress (on stderr, so ``--json`` keeps stdout clean)
and maps the run's status to an exit code: 0 done or stopped by a budget, 1 failed,
130 interrupted, 2 bad input.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from exapt.engine import Run

EXIT_CODES = {"done": 0, "stopped": 0, "failed": 1, "interrupted": 130}
# Options that define what a run is: taken from the saved config on --resume.
DEFINING = (
    "suite",
    "split",
    "limit",
    "task",
    "model",
    "api_base",
    "agent",
    "sandbox",
    "trials",
    "memory",
    "memory_url",
)


def run(
    suite: Annotated[
        str | None,
        typer.Option(
            help="humaneval | polyglot:PATH | jsonl:PATH | miniwob[:OPTIONS] "
            "(required unless --resume)"
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="train | dev | test | all (by task-id hash) (default: all)")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="run only the first N tasks after the split")
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(help="run only this task id (repeatable), after the split"),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="only these tasks, comma-separated, after the split; a built-in suite's ids "
            "may drop its prefix: --tasks click-test,enter-text"
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="local | local:PATH | a litellm model string | scripted:PATH (default: local)"
        ),
    ] = None,
    api_base: Annotated[
        str | None, typer.Option(help="server URL for litellm strings (vLLM, Ollama...)")
    ] = None,
    agent: Annotated[
        str | None,
        typer.Option(help="agent spec YAML or built-in name (default: the best for the model)"),
    ] = None,
    sandbox: Annotated[
        str | None, typer.Option(help="sandbox backend (default: the best available)")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="parallel attempts (default: 4 for local, 8 remote, 1 scripted)"),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(help="attempts per task; failed tasks retry with reflections (default: 1)"),
    ] = None,
    memory: Annotated[
        bool | None,
        typer.Option("--memory/--no-memory", help="long-term memory (default: on when installed)"),
    ] = None,
    memory_url: Annotated[
        str | None, typer.Option(help="Chroma server http://HOST:PORT (default: the home folder)")
    ] = None,
    max_cost_usd: Annotated[
        float | None, typer.Option(help="run budget in USD: stop starting tasks when reached")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="run budget in tokens (in + out)")] = None,
    max_wall_s: Annotated[
        float | None, typer.Option(help="run budget in wall-clock seconds")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="continue run RUN_ID: only the attempts not stored yet", metavar="RUN_ID"
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="print the summary as JSON on stdout")
    ] = False,
) -> None:
    """Run an agent on a suite's tasks; every attempt is stored as it finishes.

    Example: exapt run --suite humaneval --limit 5 --model local
    """
    from exapt.engine import Run, make_config
    from exapt.errors import ConfigError

    values: dict[str, Any] = {
        "suite": suite,
        "split": split,
        "limit": limit,
        "task": [*(task or []), *task_ids(suite, tasks)] or None,
        "model": model,
        "api_base": api_base,
        "agent": agent,
        "sandbox": sandbox,
        "workers": workers,
        "trials": trials,
        "memory": memory,
        "memory_url": memory_url,
        "max_cost_usd": max_cost_usd,
        "max_tokens": max_tokens,
        "max_wall_s": max_wall_s,
    }
    if resume is not None:
        given = [f"--{k.replace('_', '-')}" for k in DEFINING if values[k] is not None]
        if given:
            raise ConfigError(
                f"--resume continues a run with its saved config; {', '.join(given)} cannot change",
                hint="only --workers, --max-cost-usd, --max-tokens, --max-wall-s and --json "
                "go with --resume",
            )
        budget = {k: values[k] for k in ("workers", "max_cost_usd", "max_tokens", "max_wall_s")}
        prepared = Run.resume(resume, **budget)
    else:
        if suite is None:
            raise ConfigError("--suite is required", hint="e.g. --suite humaneval --limit 5")
        prepared = Run.prepare(make_config(**{k: v for k, v in values.items() if v is not None}))
    _execute(prepared, json_out)


#: Built-in suites whose task ids start with "<suite>/": --tasks may leave that out.
PREFIXED_SUITES = ("humaneval", "polyglot", "miniwob")


def task_ids(suite: str | None, names: str | None) -> list[str]:
    """``--tasks a,b`` as task ids: ``click-test`` -> ``miniwob/click-test`` for a built-in
    suite (ids of other suites are taken as written)."""
    kind = (suite or "").partition(":")[0].strip().lower()
    ids = []
    for name in filter(None, (part.strip() for part in (names or "").split(","))):
        prefixed = kind in PREFIXED_SUITES and not name.startswith(f"{kind}/")
        ids.append(f"{kind}/{name}" if prefixed else name)
    return ids


def _execute(prepared: Run, json_out: bool) -> None:
    from exapt.commands.runs import make_console

    err = make_console(stderr=True)
    out = make_console()
    verb = "resuming" if prepared.resumed else "starting"
    c = prepared.config
    err.print(
        f"{verb} run [bold]{prepared.run_id}[/]: {len(prepared.tasks)} tasks of "
        f"{prepared.suite.name} ({c.split}), model {c.model}, sandbox {prepared.backend}, "
        f"{prepared.workers} workers, {c.trials} trial(s), memory {'on' if c.memory else 'off'}",
        highlight=False,
    )
    summary = _with_progress(prepared, err)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        _results_table(prepared, out)
    _epilogue(prepared, summary, err)
    code = EXIT_CODES.get(summary["status"], 1)
    if prepared.abandoned:  # worker threads are still inside attempts: do not wait for them
        import atexit

        sys.stdout.flush()
        sys.stderr.flush()
        # os._exit skips exit handlers; run them first, e.g. the one stopping a local model
        # server, which would otherwise outlive us (private API, but stable since 3.0).
        atexit._run_exitfuncs()
        os._exit(code)
    if code:
        raise typer.Exit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run like Ctrl-C: a summary, then exit


def _with_progress(prepared: Run, err: Console) -> dict[str, Any]:
    """Execute the run under a live progress bar on stderr."""
    import signal

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from exapt.engine import Progress as RunProgress

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
    )
    with Progress(*columns, console=err) as bar:
        handle = bar.add_task("tasks", total=len(prepared.tasks), stats="")

        def show(p: RunProgress) -> None:
            stats = (
                f"pass {p.pass_rate:.0%} ({p.passed}/{p.done})  {p.tokens:,} tok  "
                f"${p.cost_usd:.4f}  {_clock(p.elapsed_s)}  running {p.running}"
            )
            bar.update(handle, completed=p.done, stats=stats)
            if p.note:
                bar.console.print(f"[yellow]{p.note}[/]")

        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return prepared.execute(on_progress=show)
        finally:
            signal.signal(signal.SIGTERM, previous)


def _results_table(prepared: Run, out: Console, max_rows: int = 50) -> None:
    """One row per task (the first ``max_rows``), then the totals."""
    from rich.table import Table

    table = Table(title=f"run {prepared.run_id}", show_lines=False)
    for name in ("task", "result", "trials", "reward", "tokens", "cost", "wall", "stop"):
        table.add_column(name, justify="left" if name in ("task", "result", "stop") else "right")
    for task in prepared.tasks[:max_rows]:
        s = prepared.states.get(task.id)
        if s is None or s.trials_done == 0:
            table.add_row(task.id, "[dim]not run[/]", "0", "", "", "", "", "")
            continue
        result = "[green]pass[/]" if s.passed_trial is not None else "[red]fail[/]"
        table.add_row(
            task.id,
            result,
            str(s.trials_done),
            f"{s.reward:.2f}",
            f"{s.tokens_in + s.tokens_out:,}",
            f"${s.cost_usd:.4f}",
            f"{s.wall_s:.1f}s",
            s.stop_reason,
        )
    out.print(table)
    if len(prepared.tasks) > max_rows:
        more = len(prepared.tasks) - max_rows
        out.print(f"... {more} more tasks: exapt runs show {prepared.run_id}", highlight=False)


def _epilogue(prepared: Run, summary: dict[str, Any], err: Console) -> None:
    """The one-line verdict on stderr, and how to resume when the run did not finish."""
    line = (
        f"{summary['status']}: {summary['n_passed']}/{summary['n_tasks']} passed "
        f"({summary['pass_rate']:.1%}), {summary['tokens_in'] + summary['tokens_out']:,} tokens, "
        f"${summary['cost_usd']:.4f}, {_clock(summary['wall_s'])}"
    )
    if "per_trial" in summary:
        line += "; per trial: " + ", ".join(f"{r:.1%}" for r in summary["per_trial"])
    err.print(line, highlight=False)
    if summary.get("stop_detail"):
        err.print(f"[yellow]stopped:[/] {summary['stop_detail']}", highlight=False)
    if summary.get("error"):
        err.print(f"[bold red]error:[/] {summary['error']}", highlight=False)
    if summary["status"] != "done":
        again = f"exapt run --resume {prepared.run_id}"
        if summary["status"] == "stopped":  # "budget: max_tokens=1000 reached ..." -> the flag
            name = str(summary.get("stop_detail", "")).removeprefix("budget: ").split("=")[0]
            again += f" --{name.replace('_', '-')} <a larger budget>"
        err.print(f"[yellow]hint:[/] finish it with: {again}", highlight=False)
    err.print(f"summary: {prepared.run_dir / 'summary.json'}", highlight=False)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
