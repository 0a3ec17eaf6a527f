"""Training speed: exapt's SFT path (``train_adapter``) against a bare TRL ``SFTTrainer`` script,
same data, same model, same LoRA and optimiser settings, in the same run.

Data: the HumanEval train split as prompt-completion rows (prompt = the function's file, the
completion agent's first prompt; completion = the canonical solution), the rows exapt's sft
datasets hold for completion calls. Both sides: LoRA r=16 / alpha 32 / dropout 0.05 on all
linear layers, lr 2e-4, batch 4, seed 0 (so both draw the same batches: padding differs with
the shuffle), ``--steps`` steps, on CPU, torch's default threads, each side's default precision
(TRL's ``SFTConfig`` trains in bf16 autocast unless told otherwise; exapt's ``precision=auto``
does where the CPU has native bf16, as this EPYC does; before it, exapt trained in fp32
against TRL's bf16 and measured 1.22x slower), TRL's other defaults.

What each side includes (each run is its own process, so neither inherits the other's warm
state; sides alternate, A B B A ..., and medians are reported):

- ``exapt``: ``train_adapter(dataset, checkpoint, out, TrainConfig(max_steps=...))`` as
  ``exapt improve`` calls it — token lengths measured (max_length from the data), prompt and
  completion tokenized apart, checkpoints every 25 steps, the adapter saved atomically;
- ``bare``: ``SFTTrainer(model, SFTConfig(...), train_dataset, peft_config=LoraConfig(...))``
  with TRL's defaults (``max_length=1024``, completion-only loss), ``save_strategy="no"``,
  then ``save_pretrained``.

Figures: training tokens/s (TRL's ``num_tokens`` / ``train_runtime``, the loop itself) and
end-to-end tokens/s (the same tokens / wall time from loading the model to the saved adapter).
Target: bare / exapt <= 1.1 on training tokens/s.

Run: python bench/train_speed.py [--tiny] [--steps 8] [--repeats 3] [--rows 32]
(``--tiny``: the tiny test checkpoint, to check the script; writes bench/results/train_speed.json,
or train_speed_tiny.json)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result

import exapt  # noqa: F401  (offline defaults)

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def rows(n: int) -> list[dict[str, Any]]:
    from exapt.tasks import load_suite, split_tasks

    tasks = split_tasks(load_suite("humaneval").tasks(), "train")[:n]
    return [
        {
            "prompt": t.files["solution.py"],
            "completion": t.hidden["canonical_solution"],
            "task_id": t.id,
            "split": "train",
        }
        for t in tasks
    ]


def worker(side: str, checkpoint: str, data: str, steps: int, out: str) -> dict[str, Any]:
    """One training run in this process; returns its figures."""
    import datasets

    records = json.loads(Path(data).read_text())
    started = time.perf_counter()
    if side == "exapt":
        from exapt.evolve.training.train import TrainConfig, train_adapter

        dataset = datasets.Dataset.from_list(records)
        config = TrainConfig(max_steps=steps, batch_size=4, learning_rate=2e-4, lora_r=16)
        result = train_adapter(dataset, checkpoint, Path(out), config, progress=False)
        tokens = result.metrics["train_tokens"]
        runtime = result.metrics["train_runtime_s"]
        precision = result.metrics["precision"]
    else:
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from trl import SFTConfig, SFTTrainer

        dataset = datasets.Dataset.from_list(
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in records]
        )
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint)
        args = SFTConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=4, learning_rate=2e-4,
            logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
            seed=0,  # exapt's default seed: the same shuffle, so the same batches and padding
        )  # fmt: skip
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
        )  # fmt: skip
        output = trainer.train()
        trainer.model.save_pretrained(str(Path(out) / "adapter"))
        tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e][-1]
        runtime = output.metrics["train_runtime"]
        precision = "bf16" if trainer.args.bf16 else "fp32"
    wall = time.perf_counter() - started
    return {
        "side": side,
        "precision": precision,
        "tokens": tokens,
        "train_runtime_s": runtime,
        "train_tokens_per_s": tokens / runtime,
        "wall_s": wall,
        "end_to_end_tokens_per_s": tokens / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test checkpoint")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--worker", choices=["exapt", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.checkpoint, args.data, args.steps, args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        if args.tiny:
            from exapt.agents.models.tiny import build_tiny_checkpoint

            checkpoint = build_tiny_checkpoint(Path(tmp) / "tiny")
        else:
            from exapt.evolve.improve import base_checkpoint

            checkpoint = base_checkpoint("local")
        data = Path(tmp) / "rows.json"
        data.write_text(json.dumps(rows(args.rows)))
        runs: list[dict[str, Any]] = []
        order = []
        for i in range(args.repeats):  # A B, B A, A B ...: neither side always goes first
            order += ["exapt", "bare"] if i % 2 == 0 else ["bare", "exapt"]
        for k, side in enumerate(order):
            out = Path(tmp) / f"run-{k}"
            command = [
                sys.executable, __file__, "--worker", side, "--checkpoint", str(checkpoint),
                "--data", str(data), "--steps", str(args.steps), "--out", str(out),
            ]  # fmt: skip
            load = [round(x, 2) for x in __import__("os").getloadavg()]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{side} run failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["load_before"] = load
            runs.append(result)
            print(
                f"{side:5s}  train {result['train_tokens_per_s']:8.1f} tok/s  end-to-end "
                f"{result['end_to_end_tokens_per_s']:8.1f} tok/s  ({result['wall_s']:.0f} s, "
                f"load {load[0]})",
                flush=True,
            )
    summary: dict[str, Any] = {}
    for side in ("exapt", "bare"):
        mine = [r for r in runs if r["side"] == side]
        summary[side] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("train_tokens_per_s", "end_to_end_tokens_per_s", "wall_s", "tokens")
        }
    ratio = summary["bare"]["train_tokens_per_s"] / summary["exapt"]["train_tokens_per_s"]
    ratio_e2e = (
        summary["bare"]["end_to_end_tokens_per_s"] / summary["exapt"]["end_to_end_tokens_per_s"]
    )
    print()
    print(f"{'':22s}{'exapt':>12s}{'bare TRL':>12s}")
    for key in ("train_tokens_per_s", "end_to_end_tokens_per_s", "wall_s", "tokens"):
        print(f"{key:22s}{summary['exapt'][key]:12.1f}{summary['bare'][key]:12.1f}")
    verdict = "met" if ratio <= 1.1 else "MISSED"
    print(
        f"bare/exapt training tokens/s: {ratio:.3f} (target <= 1.1: {verdict}); "
        f"end to end {ratio_e2e:.3f}"
    )
    name = "train_speed_tiny" if args.tiny else "train_speed"
    path = write_result(
        name,
        {
            "benchmark": "train_speed",
            "model": "tiny" if args.tiny else "gemma3-270m (fp32 checkpoint)",
            "rows": args.rows,
            "steps": args.steps,
            "repeats": args.repeats,
            "settings": {"batch_size": 4, "learning_rate": 2e-4, **LORA},
            "runs": runs,
            "median": summary,
            "ratio_bare_over_exapt_train": ratio,
            "ratio_bare_over_exapt_end_to_end": ratio_e2e,
            "target": "<= 1.1",
            "target_met": ratio <= 1.1,
            "machine": machine_info(),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
