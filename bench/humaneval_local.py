"""pass@1 of the default agent with the embedded ``local`` model on HumanEval, side by side
with a single greedy sample; prints a table and saves ``bench/results/humaneval_local.json``.

This is the baseline the self-improvement work (memory, evolution, fine-tuning) is measured
against. "exapt default" runs exactly what a user gets from
``exapt run --suite humaneval --model local`` (for a base model the completion agent: sample,
run the docstring's examples in the sandbox, retry with the error). "single greedy sample"
is the same spec with ``retries: 0``: one greedy completion per task, scored the same way —
the plain-completion baseline, measured in the same run on the same tasks.

The model is served by the local engine ``local`` resolves to (llama.cpp's ``llama-server`` on
the shipped Q4_K_M GGUF where llama.cpp is built; ``EXAPT_LOCAL_ENGINE`` picks another); the
JSON records which, its command line and the machine's load before and after.

Run: ``python bench/humaneval_local.py`` (all 164 tasks) or ``--limit N`` for the first N
tasks (the JSON records which).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result


def run_one(
    label: str, agent: str | None, limit: int | None, workers: int | None
) -> dict[str, Any]:
    from exapt.engine import Run, RunConfig

    console = Console()
    config = RunConfig(
        suite="humaneval",
        split="all",
        model="local",
        limit=limit,
        workers=workers,
        agent=agent,
        memory=False,
    )
    run = Run.prepare(config)
    started = time.monotonic()
    last = [started]

    def progress(p: Any) -> None:
        if time.monotonic() - last[0] > 60:
            last[0] = time.monotonic()
            console.print(f"[dim]{label}: {p.done}/{p.n_tasks} done, {p.passed} passed[/]")

    summary = run.execute(on_progress=progress)
    wall = time.monotonic() - started
    return {
        "label": label,
        "run_id": summary["run_id"],
        "status": summary["status"],
        "agent": summary["agent"],
        "variant_id": summary["variant_id"],
        "workers": summary["workers"],
        "sandbox": summary["sandbox"],
        "n_tasks": summary["n_tasks"],
        "n_passed": summary["n_passed"],
        "pass_at_1": summary["pass_rate"],
        "wall_s": round(wall, 1),
        "tokens_in": summary["tokens_in"],
        "tokens_out": summary["tokens_out"],
        "tokens_out_per_s": round(summary["tokens_out"] / wall, 2) if wall else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="HumanEval pass@1 with the local model")
    parser.add_argument("--limit", type=int, default=None, help="first N tasks only")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    from exapt.agents import load_spec

    load_before = machine_info()["load_avg"]

    with tempfile.TemporaryDirectory() as tmp:
        single = load_spec("completion").with_changes(
            name="completion_single_sample",
            graph_options={**load_spec("completion").graph_options, "retries": 0},
        )
        single_path = single.save(Path(tmp) / "single")
        rows = [
            run_one("exapt default agent", None, args.limit, args.workers),
            run_one("single greedy sample", str(single_path), args.limit, args.workers),
        ]

    ours, base = rows
    from exapt.agents.models.engine import LocalEngine
    from exapt.agents.models.local import LocalModel

    engine = LocalModel(None).engine_instance()
    served = engine.server if isinstance(engine, LocalEngine) else None
    table = Table(title="HumanEval, model local (Gemma 3 270M base)")
    for col in ("", "tasks", "passed", "pass@1", "wall s", "tokens out", "tok/s"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["label"],
            str(row["n_tasks"]),
            str(row["n_passed"]),
            f"{row['pass_at_1']:.3f}",
            f"{row['wall_s']:.0f}",
            str(row["tokens_out"]),
            f"{row['tokens_out_per_s']:.1f}",
        )
    Console().print(table)
    result = {
        "machine": machine_info(),
        "load_avg_before": load_before,
        "engine": engine.name,
        "llama_server_command": served.command(0) if served is not None else None,
        "limit": args.limit,
        "rows": rows,
        "pass_at_1_gain": round(ours["pass_at_1"] - base["pass_at_1"], 4),
        "wall_ratio": round(ours["wall_s"] / base["wall_s"], 2) if base["wall_s"] else None,
    }
    print(f"saved {write_result('humaneval_local', result)}")


if __name__ == "__main__":
    main()
