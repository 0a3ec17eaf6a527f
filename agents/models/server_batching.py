"""The batching generator of the transformers server (``server.py``): one checkpoint's model
and tokenizer, and the worker thread that serves concurrent requests in batches.

A worker thread takes every waiting request (``Job``) with the same sampling settings (up to
``max_batch``) into one left-padded ``model.generate`` call; each row stops on its own stop
strings, EOS or ``max_tokens`` (a per-row stopping criterion), the call ends when all rows
have. A call starts once no new request has come for ``window_s`` (150 ms), so that agents
sending together share it. This is static batching: a request that arrives during a call waits
for it to end (continuous batching would not), the price of staying on plain ``generate``;
results are exactly those of ``generate`` (greedy output is identical).

Runs in the server's process only: torch and transformers load when ``Engine`` is built.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import exapt  # noqa: F401  (sets the offline environment before transformers loads)

log = logging.getLogger("exapt.server")


class BadRequest(ValueError):
    """The request cannot be served as sent (HTTP 400)."""


@dataclass(eq=False)
class Job:
    """One request waiting for, or in, a batch."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    done: Callable[[dict[str, Any] | BaseException], None]
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def sampling_key(self) -> tuple[float, float]:
        # Rows of one generate call share the sampling settings; greedy rows share one key.
        return (0.0, 1.0) if self.temperature <= 0 else (self.temperature, self.top_p)


class Engine:
    """The model, its tokenizer and the batching worker thread."""

    def __init__(self, checkpoint: Path, max_batch: int, window_s: float = 0.15) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.checkpoint = checkpoint
        self.max_batch = max_batch
        self.window_s = window_s
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
        generation = self.model.generation_config
        eos = generation.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        eos_list = eos if isinstance(eos, list) else [] if eos is None else [eos]
        self.eos_ids: set[int] = set(eos_list)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids, default=0)
        self.max_positions = int(
            getattr(self.model.config.get_text_config(), "max_position_embeddings", 0) or 1 << 30
        )
        self._queue: list[Job] = []
        self._cv = threading.Condition()
        self._worker = threading.Thread(target=self._loop, name="generate", daemon=True)
        self._worker.start()

    def warm_up(self) -> None:
        """One short generation, so the first real request does not pay for lazy setup."""
        done = threading.Event()
        self.submit(Job(self.encode("Hello"), 2, 0.0, 1.0, [], lambda _: done.set()))
        done.wait()

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def submit(self, job: Job) -> None:
        if not job.prompt_ids:
            raise BadRequest("the prompt is empty (no tokens)")
        if len(job.prompt_ids) + job.max_new_tokens > self.max_positions:
            raise BadRequest(
                f"prompt ({len(job.prompt_ids)} tokens) + max_tokens ({job.max_new_tokens}) "
                f"exceeds the context window of {self.max_positions} tokens"
            )
        with self._cv:
            self._queue.append(job)
            self._cv.notify()

    # -- the worker --------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
            # Requests sent together (8 agents starting at once) arrive spread out: each client
            # spends CPU in litellm before sending, and on a busy machine that takes 100s of ms.
            # Wait until no request has arrived for one window (capped at 10 windows), so they
            # share one call: ~0.15 s of latency against seconds of generation.
            first = time.perf_counter()
            while True:
                with self._cv:
                    waiting = len(self._queue)
                    last = max(job.enqueued for job in self._queue)
                now = time.perf_counter()
                if (
                    waiting >= self.max_batch
                    or now - last >= self.window_s
                    or now - first >= 10 * self.window_s
                ):
                    break
                time.sleep(self.window_s / 4)
            with self._cv:
                key = self._queue[0].sampling_key
                batch = [job for job in self._queue if job.sampling_key == key][: self.max_batch]
                taken = {id(job) for job in batch}
                self._queue = [job for job in self._queue if id(job) not in taken]
            try:
                results = self._generate(batch)
            except BaseException as exc:  # a failed call fails its requests, not the server
                log.exception("generation failed for a batch of %d", len(batch))
                for job in batch:
                    job.done(exc)
                continue
            for job, result in zip(batch, results, strict=True):
                job.done(result)

    def _generate(self, batch: list[Job]) -> list[dict[str, Any]]:
        torch = self.torch
        started = time.perf_counter()
        width = max(len(job.prompt_ids) for job in batch)
        # Left padding: every row's next token is at the same position (decoder-only batching).
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, job in enumerate(batch):
            input_ids[row, width - len(job.prompt_ids) :] = torch.tensor(job.prompt_ids)
            attention[row, width - len(job.prompt_ids) :] = 1
        stops = _RowStops(batch, width, self.eos_ids, self.tokenizer)
        first = batch[0]
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p}
            if first.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max(job.max_new_tokens for job in batch),
                stopping_criteria=[stops],
                pad_token_id=self.pad_id,
                **sampling,
            )
        results: list[dict[str, Any]] = []
        for row, job in enumerate(batch):
            generated = output[row, width:].tolist()
            used = stops.finished_at[row] or len(generated)
            generated = generated[:used]
            hit_eos = bool(generated) and generated[-1] in self.eos_ids
            text = str(
                self.tokenizer.decode(
                    generated[:-1] if hit_eos else generated, skip_special_tokens=True
                )
            )
            cut = _first_stop(text, job.stop)
            if cut is not None:
                text = text[:cut]
            length_limited = cut is None and not hit_eos and used >= job.max_new_tokens
            results.append(
                {
                    "text": text,
                    "prompt_tokens": len(job.prompt_ids),
                    "completion_tokens": used,
                    "finish_reason": "length" if length_limited else "stop",
                }
            )
        elapsed = time.perf_counter() - started
        total = sum(r["completion_tokens"] for r in results)
        log.info(
            "batch of %d: %d new tokens in %.2f s (%.1f tokens/s); waited %.2f s",
            len(batch),
            total,
            elapsed,
            total / max(elapsed, 1e-9),
            started - min(job.enqueued for job in batch),
        )
        return results


class _RowStops:
    """A per-row stopping criterion: a row is done at its own EOS, stop string or max_tokens.

    ``generate`` ANDs the returned mask into its unfinished rows, so each row stops on its own
    and the call ends when every row is done. ``finished_at[row]`` = tokens the row generated.
    """

    def __init__(self, batch: list["Job"], width: int, eos_ids: set[int], tokenizer: Any) -> None:
        self.batch = batch
        self.width = width
        self.eos_ids = eos_ids
        self.tokenizer = tokenizer
        self.finished_at: list[int | None] = [None] * len(batch)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        steps = input_ids.shape[1] - self.width
        done = []
        for row, job in enumerate(self.batch):
            if self.finished_at[row] is None:
                token = int(input_ids[row, -1])
                finished = token in self.eos_ids or steps >= job.max_new_tokens
                if not finished and job.stop:
                    # Decode only the tail that can hold a stop string ending at this token.
                    tail = input_ids[row, max(self.width, input_ids.shape[1] - 64) :].tolist()
                    text = self.tokenizer.decode(tail, skip_special_tokens=True)
                    finished = _first_stop(text, job.stop) is not None
                if finished:
                    self.finished_at[row] = steps
            done.append(self.finished_at[row] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _first_stop(text: str, stops: list[str]) -> int | None:
    found = [i for s in stops if s and (i := text.find(s)) >= 0]
    return min(found) if found else None
