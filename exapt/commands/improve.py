"""``exapt improve``: self-training rounds on a suite (``exapt.evolve.improve.Improve``):
collect with the current policy, build a dataset, train a LoRA, evaluate held out, promote.

Progress goes to stderr (``--json`` keeps stdout for the final state); a table row per round
shows train and held-out pass@1 with 95% intervals, dataset size, loss, training tokens/s and
wall time. Exit status: 0 done, 1 failed (resumable), 130 interrupted, 2 bad input.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def improve(
    suite: Annotated[
        str | None,
        typer.Option(help="humaneval | polyglot:PATH | jsonl:PATH (required unless --resume)"),
    ] = None,
    model: Annotated[
        str, typer.Option(help="the base: local | local:PATH (a checkpoint)")
    ] = "local",
    rounds: Annotated[int, typer.Option(help="rounds of collect -> train -> evaluate")] = 2,
    samples: Annotated[int, typer.Option(help="attempts per train task per round (K)")] = 4,
    method: Annotated[str, typer.Option(help="sft | rerest | dpo | kto")] = "sft",
    temperature: Annotated[float, typer.Option(help="sampling temperature of collection")] = 0.8,
    limit: Annotated[int | None, typer.Option(help="first N tasks of each split")] = None,
    workers: Annotated[int, typer.Option(help="parallel attempts")] = 4,
    agent: Annotated[
        str | None, typer.Option(help="agent spec (default: the best for the model)")
    ] = None,
    sandbox: Annotated[str | None, typer.Option(help="sandbox backend (default: the best)")] = None,
    line: Annotated[
        str | None, typer.Option(help="name of the policies' line (default: run id)")
    ] = None,
    gate_split: Annotated[str, typer.Option(help="held-out split promotion is gated on")] = "dev",
    report_split: Annotated[
        str, typer.Option(help="held-out split reported each round (never trained on); none: off")
    ] = "test",
    min_gain: Annotated[
        float, typer.Option(help="gate: pass-rate gain needed (0 = not worse)")
    ] = 0.0,
    accumulate: Annotated[
        bool, typer.Option("--accumulate/--no-accumulate", help="train on all rounds' data so far")
    ] = True,
    lora_r: Annotated[int, typer.Option(help="LoRA rank")] = 16,
    epochs: Annotated[float, typer.Option(help="training epochs per round")] = 2.0,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="learning rate")] = None,
    batch_size: Annotated[int, typer.Option(help="training batch size")] = 4,
    max_length: Annotated[
        int | None, typer.Option(help="longest row in tokens (default: the data's longest)")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="training steps per round (cap)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 where the GPU or CPU has it natively) | bf16 | fp32")
    ] = "auto",
    resume: Annotated[
        str | None, typer.Option(help="continue improve run ID where it stopped", metavar="ID")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the final state as JSON")] = False,
) -> None:
    """Self-train a LoRA policy: collect on the train split, train, gate on dev, report test.

    Example: exapt improve --suite humaneval --model local --rounds 2 --samples 4
    """
    from exapt.errors import ConfigError
    from exapt.evolve.improve import Improve, make_improve_config

    if resume is not None:
        loop = Improve.resume(resume)
    else:
        if suite is None:
            raise ConfigError("--suite is required", hint="e.g. --suite humaneval --limit 10")
        training = {
            "lora_r": lora_r, "epochs": epochs, "learning_rate": learning_rate,
            "batch_size": batch_size, "max_length": max_length, "max_steps": max_steps,
            "device": device, "precision": precision,
        }  # fmt: skip
        from exapt.evolve.training.train import TrainConfig

        try:
            train_config = TrainConfig(**training)
        except ValueError as exc:
            raise ConfigError(f"bad training option: {exc}") from exc
        config = make_improve_config(
            suite=suite, model=model, rounds=rounds, samples=samples, method=method,
            temperature=temperature, limit=limit, workers=workers, agent=agent, sandbox=sandbox,
            line=line, gate_split=gate_split,
            report_split=None if report_split == "none" else report_split,
            min_gain=min_gain, accumulate=accumulate, training=train_config,
        )  # fmt: skip
        loop = Improve.prepare(config)
    _execute(loop, json_out)


def _execute(loop: Any, json_out: bool) -> None:
    from exapt.commands.runs import make_console

    err, out = make_console(stderr=True), make_console()
    c = loop.config
    splits = ", ".join(f"{s} {len(t)}" for s, t in loop.tasks.items())
    err.print(
        f"improve [bold]{loop.run_id}[/]: {c.rounds} round(s) of {c.method} on {c.suite} "
        f"({splits} tasks), base {c.model}, {c.samples} samples/task at T={c.temperature}, "
        f"line {loop.line}",
        highlight=False,
    )
    code = 0
    try:
        state = _with_progress(loop, err, out)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: exapt improve --resume {loop.run_id}", highlight=False)
        raise typer.Exit(130) from None
    except Exception as exc:
        from exapt.errors import ExaptError

        if not isinstance(exc, ExaptError) or "bad improve option" in str(exc):
            raise
        err.print(f"[bold red]failed:[/] {exc}", highlight=False)
        err.print(f"[yellow]hint:[/] exapt improve --resume {loop.run_id}", highlight=False)
        state, code = loop.state, 1
    if json_out:
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
    else:
        out.print(rounds_table(state))
    err.print(f"state: {loop.run_dir / 'improve.json'}", highlight=False)
    if code:
        raise typer.Exit(code)


def _with_progress(loop: Any, err: Console, out: Console) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
    )
    with Progress(*columns, console=err) as bar:
        handle = bar.add_task("starting", total=1, stats="")

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "evaluate":
                bar.reset(handle, total=data["n_tasks"], description=data["label"], stats="")
            elif kind == "progress":
                p = data["progress"]
                stats = f"pass {p.pass_rate:.0%} ({p.passed}/{p.done})  {p.tokens:,} tok"
                bar.update(handle, completed=p.done, stats=stats)
            elif kind == "phase" and data["phase"] in ("dataset", "train", "register", "promote"):
                bar.reset(handle, total=1, description=f"r{data['round']}-{data['phase']}")
            elif kind == "train" and "loss" in data:
                stats = f"step {data['step']}  loss {data['loss']:.4f}"
                bar.update(handle, description=f"r{data['round']}-train", stats=stats)
            elif kind == "round":
                bar.console.print(rounds_table(loop.state, only=data["round"]))

        loop.on_event = on_event
        return dict(loop.run())


def _rate(e: dict[str, Any] | None) -> str:
    if not e:
        return "-"
    lo, hi = e.get("ci95", [0.0, 0.0])
    return f"{e['pass_rate']:.1%} [{lo:.0%}, {hi:.0%}]"


def rounds_table(state: dict[str, Any], only: int | None = None) -> Any:
    """The per-round table (all rounds, or round ``only``)."""
    from rich.table import Table

    table = Table(title=f"improve {state['run_id']}")
    for name in (
        "round", "collected with", "train pass@1", "rows", "loss", "tok/s", "gate (dev)",
        "held-out", "Δ held-out [95%]", "promoted", "wall",
    ):  # fmt: skip
        table.add_column(
            name, justify="right" if name in ("rows", "loss", "tok/s", "wall") else "left"
        )
    base = state.get("base", {})
    if only is None and base:
        table.add_row("0", "base", "-", "-", "-", "-", _rate(base.get("gate")),
                      _rate(base.get("report")), "-", "-", "-")  # fmt: skip
    for r in state.get("rounds", []):
        if only is not None and r["round"] != only:
            continue
        train, verdict = r.get("train") or {}, r.get("promote") or {}
        paired = verdict.get("report_paired") or {}
        delta = (
            f"{paired['diff']:+.1%} [{paired['ci95'][0]:+.0%}, {paired['ci95'][1]:+.0%}]"
            if paired else "-"
        )  # fmt: skip
        promoted = "-" if not verdict else ("yes" if verdict.get("promoted") else "no")
        if r.get("skipped"):
            promoted = "skipped (no data)"
        table.add_row(
            str(r["round"]),
            r.get("parent") or "base",
            _rate(r.get("collect")),
            str((r.get("dataset") or {}).get("rows", "-")),
            f"{train['loss_last']:.3f}" if train.get("loss_last") is not None else "-",
            f"{train['tokens_per_s']:.0f}" if train.get("tokens_per_s") else "-",
            _rate(r.get("gate")),
            _rate(r.get("report")),
            delta,
            promoted,
            f"{r.get('wall_s', 0.0):.0f}s",
        )
    return table
