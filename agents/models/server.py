"""A thin OpenAI-compatible server for one transformers checkpoint, batching concurrent requests.

Run as ``python -m exapt.agents.models.server CHECKPOINT --port N`` (``LocalServer`` does this);
never imported by the package, so its heavy imports stay out of the agent's process.

Why our own and not ``transformers serve``: evaluated with transformers 5.23 on the tiny
checkpoint. With ``--continuous-batching`` its ``/v1/completions`` ignored ``stop`` (a stop of
``")"`` returned ``"):):):..."``): a completion agent would always generate up to
``max_tokens``, several times the work; without continuous batching it serves one request at a
time (~10 tokens/s for 8 clients on Gemma 270M, per ENVIRONMENT.md). It also wants the request's
``model`` to be the checkpoint path. This server is a thin layer around ``model.generate``
(this module: the HTTP app and the process; ``server_batching.py``: the batching generator):

- ``/v1/completions`` and ``/v1/chat/completions`` (non-streaming; ``n`` = 1), ``stop``,
  ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, OpenAI ``usage`` counts;
- any ``model`` name is accepted (one checkpoint per server);
- tool calls: when ``tools`` are sent, the chat template lists them and a reply that is a JSON
  object ``{"name": ..., "arguments": {...}}`` naming one of them is returned as a tool call;
- batching: concurrent requests with the same sampling settings share one ``model.generate``
  call (up to ``--max-batch``, gathered until none has come for ``--window-ms``); static
  batching, results exactly those of ``generate`` (see ``server_batching.py``);
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
from pathlib import Path
from typing import Any

import exapt  # noqa: F401  (sets the offline environment before transformers loads)
from exapt.agents.models.chat_prompt import BadChatRequest, clean_messages, tool_call
from exapt.agents.models.server_batching import BadRequest, Engine, Job

log = logging.getLogger("exapt.server")

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
