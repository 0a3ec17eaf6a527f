"""A thin OpenAI-compatible server for one transformers checkpoint, batching concurrent requests.

Run as ``python -m exapt.agents.models.server CHECKPOINT --port N`` (``LocalServer`` does this);
never imported by the package, so its heavy imports stay out of the agent's process.

Why our own and not ``transformers serve``: evaluated with transformers 5.23 on the tiny
checkpoint. With ``--continuous-batching`` its ``/v1/completions`` ignored ``stop`` (a stop of
``")"`` returned ``"):):):..."``): a completion agent would always generate up to
``max_tokens``, several times the work; without continuous batching it serves one request at a
time (~10 tokens/s for 8 clients on Gemma 270M, per ENVIRONMENT.md). It also wants the request's
``model`` to be the checkpoint path. This server is ~300 lines around ``model.generate``:

- ``/v1/completions`` and ``/v1/chat/completions`` (non-streaming; ``n`` = 1), ``stop``,
  ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, OpenAI ``usage`` counts;
- any ``model`` name is accepted (one checkpoint per server);
- tool calls: when ``tools`` are sent, the chat template lists them and a reply that is a JSON
  object ``{"name": ..., "arguments": {...}}`` naming one of them is returned as a tool call;
- batching: a worker thread takes every waiting request with the same sampling settings (up to
  ``--max-batch``) into one left-padded ``model.generate`` call; each row stops on its own
  stop strings, EOS or ``max_tokens`` (a per-row stopping criterion), the call ends when all
  rows have. A call starts once no new request has come for ``--window-ms`` (150 ms), so that
  agents sending together share it. This is static batching: a request that arrives during a
  call waits for it to end (continuous batching would not), the price of staying on plain
  ``generate``; results are exactly those of ``generate`` (greedy output is identical);
- ``--threads`` (0 = auto: all cores, or 1 on an oversubscribed machine; see ``auto_threads``).

Endpoints: ``GET /health`` (200 once the model is loaded and warmed up), ``GET /v1/models``.
"""

import argparse
import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import exapt  # noqa: F401  (sets the offline environment before transformers loads)
from exapt.agents.models.chat_prompt import BadChatRequest, clean_messages, tool_call

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


# -- the HTTP layer ----------------------------------------------------------------------------


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _stops(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return stop
    raise BadRequest(f"stop must be a string or a list of strings, got {stop!r}")


def _common(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("stream"):
        raise BadRequest("stream=true is not supported by the exapt local server")
    if body.get("n", 1) != 1:
        raise BadRequest("n must be 1")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = 256 if max_tokens is None else max_tokens
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest(f"max_tokens must be a positive integer, got {max_tokens!r}")
    return {
        "max_new_tokens": max_tokens,
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        "stop": _stops(body),
    }


def build_app(engine: Engine, model_name: str) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="exapt local model server")

    async def run(job_fields: dict[str, Any], prompt_ids: list[int]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()

        def done(result: dict[str, Any] | BaseException) -> None:
            def resolve() -> None:
                if future.done():
                    return
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

            loop.call_soon_threadsafe(resolve)

        engine.submit(Job(prompt_ids=prompt_ids, done=done, **job_fields))
        return await future

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind}}, status_code=status)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def usage(result: dict[str, Any]) -> dict[str, int]:
        return {
            "prompt_tokens": result["prompt_tokens"],
            "completion_tokens": result["completion_tokens"],
            "total_tokens": result["prompt_tokens"] + result["completion_tokens"],
        }

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "checkpoint": str(engine.checkpoint)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model"}]}

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Any:
        try:
            body = await body_of(request)
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise BadRequest("prompt must be a string")
            fields = _common(body)
            result = await run(fields, engine.encode(prompt))
        except BadRequest as exc:
            return error(400, str(exc), "invalid_request_error")
        except Exception as exc:
            log.exception("completion failed")
            return error(500, f"{type(exc).__name__}: {exc}", "server_error")
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model") or model_name,
            "choices": [
                {
                    "index": 0,
                    "text": result["text"],
                    "finish_reason": result["finish_reason"],
                    "logprobs": None,
                }
            ],
            "usage": usage(result),
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        try:
            body = await body_of(request)
            clean = clean_messages(body.get("messages"))
            tools = body.get("tools") or None
            if engine.tokenizer.chat_template is None:
                raise BadRequest(f"{engine.checkpoint} has no chat template: use /v1/completions")
            prompt = str(
                engine.tokenizer.apply_chat_template(
                    clean, tools=tools, add_generation_prompt=True, tokenize=False
                )
            )
            fields = _common(body)
            # The template already holds the BOS token: do not add special tokens twice.
            result = await run(fields, engine.encode(prompt, special=False))
        except (BadRequest, BadChatRequest) as exc:
            return error(400, str(exc), "invalid_request_error")
        except Exception as exc:
            log.exception("chat completion failed")
            return error(500, f"{type(exc).__name__}: {exc}", "server_error")
        message: dict[str, Any] = {"role": "assistant", "content": result["text"]}
        finish = result["finish_reason"]
        call = tool_call(result["text"], tools) if tools else None
        if call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or model_name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage(result),
        }

    return app


def auto_threads() -> int:
    """All cores on a quiet machine, one on an oversubscribed one.

    With more runnable processes than cores, torch's OpenMP regions stall whenever one of their
    threads is descheduled: measured on 2 cores at load ~13, a Gemma 270M decode step at batch
    8 took 5.6 s with 2 threads and 0.93 s with 1.
    """
    cores = os.cpu_count() or 1
    return 1 if os.getloadavg()[0] >= cores else cores


def _exit_with_parent(pid: int) -> None:
    """Exit when the process that started us is gone (killed without running its atexit)."""
    while True:
        time.sleep(2.0)
        if os.getppid() != pid:
            log.info("parent %d is gone: exiting", pid)
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--window-ms", type=float, default=150.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: auto")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import uvicorn

    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    import torch

    threads = args.threads or auto_threads()
    torch.set_num_threads(threads)
    log.info(
        "torch threads: %d (load average %.1f, %d cores)",
        threads,
        os.getloadavg()[0],
        os.cpu_count() or 1,
    )
    started = time.perf_counter()
    engine = Engine(args.checkpoint, args.max_batch, args.window_ms / 1000)
    engine.warm_up()
    log.info("loaded %s in %.1f s", args.checkpoint, time.perf_counter() - started)
    app = build_app(engine, args.checkpoint.name)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
