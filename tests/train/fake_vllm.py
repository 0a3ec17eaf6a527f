"""A stand-in for ``vllm serve`` that implements vLLM's LoRA serving contract, for machines
without a GPU (vLLM cannot run here). Written from vLLM's documentation of the endpoints
(docs "LoRA Adapters: Dynamically serving LoRA Adapters"; ``OpenAIServingModels``):

- only with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` are ``/v1/load_lora_adapter`` and
  ``/v1/unload_lora_adapter`` there (otherwise 404, as vLLM attaches no route);
- load ``{"lora_name", "lora_path"}``: 400 when a field is missing or the name is loaded
  already, 404 "No adapter found" for a path without an adapter, 400 for a rank over
  ``--max-lora-rank``; 200 with the text "Success: LoRA adapter '<name>' added successfully.";
- unload ``{"lora_name"}``: 404 for a name not loaded, else 200 with a text body;
- ``GET /v1/models``: the base (``parent`` null) and a card per adapter (``root`` = path,
  ``parent`` = base); ``/v1/completions`` and ``/v1/chat/completions`` serve ``"model"`` =
  the base or an adapter's name (404 otherwise); errors as ``{"error": {"message", "type",
  "code"}}``.

Instead of generating, a reply names what served it: ``base`` or ``<name>@<sha of the
adapter's weights when it was loaded>`` (a name reloaded in place would show stale weights).

Run as ``python fake_vllm.py serve BASE --host H --port P --enable-lora --max-lora-rank R``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class FakeVLLM:
    def __init__(self, base: str, max_lora_rank: int = 16, runtime_updates: bool = True) -> None:
        self.base = base
        self.max_lora_rank = max_lora_rank
        self.runtime_updates = runtime_updates
        self.loras: dict[str, tuple[str, str]] = {}  # name -> (path, weights sha at load)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((path, body))
            if method == "GET" and path == "/health":
                return 200, ""
            if method == "GET" and path == "/v1/models":
                cards = [{"id": self.base, "object": "model", "root": self.base, "parent": None}]
                cards += [
                    {"id": name, "object": "model", "root": p, "parent": self.base}
                    for name, (p, _) in self.loras.items()
                ]
                return 200, {"object": "list", "data": cards}
            if path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
                if not self.runtime_updates:
                    return 404, {"detail": "Not Found"}
                return self._load(body) if path == "/v1/load_lora_adapter" else self._unload(body)
            if path in ("/v1/completions", "/v1/chat/completions"):
                return self._generate(path, body)
            return 404, {"detail": "Not Found"}

    def _load(self, body: dict[str, Any]) -> tuple[int, Any]:
        name, folder = body.get("lora_name"), body.get("lora_path")
        if not name or not folder:
            return _error(
                400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput"
            )
        if name in self.loras:
            return _error(
                400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput"
            )
        config_path = Path(folder) / "adapter_config.json"
        weights = Path(folder) / "adapter_model.safetensors"
        if not config_path.is_file() or not weights.is_file():
            return _error(
                404, f"Loading lora {name} failed: No adapter found for {folder}", "NotFoundError"
            )
        rank = int(json.loads(config_path.read_text()).get("r", 0))
        if rank > self.max_lora_rank:
            return _error(
                400, f"LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}.",
                "BadRequestError",
            )  # fmt: skip
        self.loras[name] = (folder, hashlib.sha256(weights.read_bytes()).hexdigest()[:12])
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def _unload(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("lora_name")
        if name not in self.loras:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self.loras[name]
        return 200, f"Success: LoRA adapter '{name}' removed successfully."

    def _generate(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        model = body.get("model")
        if model == self.base:
            text = "base"
        elif model in self.loras:
            text = f"{model}@{self.loras[model][1]}"
        else:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        if path == "/v1/completions":
            choice: dict[str, Any] = {"index": 0, "text": text, "finish_reason": "stop"}
            kind = "text_completion"
        else:
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            kind = "chat.completion"
        reply = {"id": "cmpl-1", "object": kind, "created": 0, "model": model}
        return 200, {**reply, "choices": [choice], "usage": usage}


def _error(code: int, message: str, kind: str) -> tuple[int, Any]:
    return code, {"error": {"message": message, "type": kind, "param": None, "code": code}}


def serve(fake: FakeVLLM, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve ``fake`` on ``host:port`` in a daemon thread; returns the server (``.server_port``)."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            code, payload = fake.handle(method, self.path, body)
            data = payload if isinstance(payload, str) else json.dumps(payload)
            kind = "text/plain" if isinstance(payload, str) else "application/json"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data.encode())))
            self.end_headers()
            self.wfile.write(data.encode())

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("base")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--max-lora-rank", type=int, default=16)
    parser.add_argument("--max-loras", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.enable_lora:
        sys.exit("LoRA is not enabled (--enable-lora)")
    updates = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
    print(f"fake vllm: {args}; runtime updates {updates}", flush=True)
    server = serve(FakeVLLM(args.base, args.max_lora_rank, updates), args.host, args.port)
    threading.Event().wait()
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
