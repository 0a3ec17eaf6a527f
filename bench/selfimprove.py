"""Self-improvement on HumanEval with the embedded model: ``exapt improve`` with ``local``
(Gemma 3 270M), collecting on the train split, gating on dev, reporting on test.

Each round: K samples per train task at T > 0 through the engine, an SFT (or --method) dataset
of the trusted passes, a LoRA trained on the fp32 checkpoint, served per request over the Q4
GGUF by llama.cpp; held-out pass@1 on the test split before (the round's parent: the base or
the promoted policy) and after (the new policy), with the paired bootstrap 95% interval of the
difference over the same tasks. The aim is a real, significant gain: the verdict says plainly
whether the interval excludes 0.

Target: >= 2 rounds within 2 hours on 2 cores. The run is ``exapt improve`` itself (the same
``Improve`` object the command drives), so the state is also in ``<home>/runs/<id>/improve.json``
and ``--resume ID`` continues a killed benchmark.

The agent is the built-in ``completion`` agent with ``--retries`` visible-check retries
(default 0: one sample per attempt; the default agent's 2 retries cost 2.4x the wall time on
HumanEval for no gain in pass@1, ``bench/humaneval_local.py``), so that the K samples per task
are K independent draws; ``--retries 2`` measures the default agent.

Run: python bench/selfimprove.py [--rounds 2] [--samples 2] [--retries 0] [--limit N] [--method sft]
     python bench/selfimprove.py --quick     (a tiny configuration that checks the script)
writes bench/results/selfimprove.json (selfimprove_quick.json with --quick)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result

import exapt  # noqa: F401  (offline defaults)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--retries", type=int, default=0, help="the completion agent's retries")
    parser.add_argument("--limit", type=int, default=None, help="first N tasks of each split")
    parser.add_argument("--method", default="sft", choices=["sft", "rerest", "dpo", "kto"])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--max-hours", type=float, default=2.0)
    parser.add_argument("--resume", default=None, help="continue this improve run id")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.samples, args.limit, args.max_steps = 1, 2, 4, 2

    from exapt.agents.models.policy import policy_engine
    from exapt.evolve.improve import Improve, ImproveConfig
    from exapt.evolve.training.train import TrainConfig

    started = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]

    def on_event(kind: str, data: dict[str, Any]) -> None:
        elapsed = f"{(time.perf_counter() - started) / 60:6.1f} min"
        if kind == "evaluate":
            print(
                f"[{elapsed}] {data['label']}: {data['n_tasks']} tasks of {data['split']}",
                flush=True,
            )
        elif kind == "phase" and data["phase"] in ("dataset", "train", "promote"):
            print(f"[{elapsed}] round {data['round']}: {data['phase']}", flush=True)
        elif kind == "round":
            print(f"[{elapsed}] round {data['round']} done", flush=True)

    if args.resume:
        loop = Improve.resume(args.resume, on_event=on_event)
    else:
        training = TrainConfig(epochs=args.epochs, max_steps=args.max_steps)
        config = ImproveConfig(
            suite="humaneval", model="local", rounds=args.rounds, samples=args.samples,
            method=args.method, limit=args.limit, workers=args.workers, training=training,
            agent=_agent(args.retries),
        )  # fmt: skip
        loop = Improve.prepare(config, on_event=on_event)
    print(f"improve run {loop.run_id}: {loop.state['splits']} tasks per split", flush=True)
    state = loop.run()
    wall = time.perf_counter() - started
    rounds = [_round_figures(state, r) for r in state["rounds"]]
    for r in rounds:
        print(
            f"round {r['round']}: test pass@1 {r['test_before']} -> {r['test_after']}  "
            f"diff {r['paired'].get('diff', 0):+.3f} CI {r['paired'].get('ci95')}  "
            f"{r['paired'].get('verdict', r.get('skipped', ''))}",
            flush=True,
        )
    significant = [r for r in rounds if r["paired"].get("verdict") == "better"]
    name = "selfimprove_quick" if args.quick else "selfimprove"
    path = write_result(
        name,
        {
            "benchmark": "selfimprove",
            "suite": "humaneval",
            "model": "local (Gemma 3 270M)",
            "engine": {
                "local": os.environ.get("EXAPT_LOCAL_ENGINE", "llama (default)"),
                "policies": policy_engine(),
            },
            "config": state["config"],
            "run_id": state["run_id"],
            "splits": state["splits"],
            "base": {k: _rate(v) for k, v in state["base"].items()},
            "rounds": rounds,
            "wall_s": wall,
            "within_max_hours": wall <= args.max_hours * 3600,
            "rounds_done": sum(
                "promote" in r.get("done", []) or bool(r.get("skipped")) for r in state["rounds"]
            ),
            "significant_gain": bool(significant),
            "verdict": (
                f"significant held-out gain in round(s) {[r['round'] for r in significant]}"
                if significant
                else "no significant held-out gain (each paired 95% interval includes 0, or none)"
            ),
            "load_avg_start": load_start,
            "machine": machine_info(),
        },
    )
    print(f"wrote {path} ({wall / 60:.1f} min)")


def _agent(retries: int) -> str:
    """The completion agent with ``retries``, saved under the home (resume reads it again)."""
    from exapt.agents import load_spec
    from exapt.paths import home

    base = load_spec("completion")
    spec = base.with_changes(
        name=f"completion_retries_{retries}",
        graph_options={**base.graph_options, "retries": retries},
    )
    return str(spec.save(home() / "bench-agents" / spec.name))


def _rate(e: dict[str, Any] | None) -> dict[str, Any] | None:
    if not e:
        return None
    return {
        k: e[k] for k in ("pass_rate", "passed", "n_tasks", "ci95", "split", "run_id") if k in e
    }


def _round_figures(state: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    verdict = r.get("promote") or {}
    parent_report = (
        state["base"].get("report")
        if r.get("parent") is None
        else next(
            (x.get("report") for x in state["rounds"] if x.get("policy") == r["parent"]), None
        )
    )
    train = r.get("train") or {}
    return {
        "round": r["round"],
        "collected_with": r.get("parent") or "base",
        "skipped": r.get("skipped"),
        "train_collect": {
            k: (r.get("collect") or {}).get(k)
            for k in ("pass_rate", "ci95", "attempts", "tasks_solved")
        },
        "dataset_rows": (r.get("dataset") or {}).get("rows"),
        "loss_first": train.get("loss_first"),
        "loss_last": train.get("loss_last"),
        "train_tokens_per_s": train.get("tokens_per_s"),
        "train_wall_s": train.get("wall_s"),
        "gate_after": _rate(r.get("gate")),
        "test_before": (parent_report or {}).get("pass_rate"),
        "test_after": (r.get("report") or {}).get("pass_rate"),
        "paired": verdict.get("report_paired") or {},
        "promoted": verdict.get("promoted"),
        "promotion_refused": verdict.get("reason"),
        "wall_s": r.get("wall_s"),
    }


if __name__ == "__main__":
    main()
