"""``exapt serve --policy NAME --port P``: a policy (or any model string) as an OpenAI-compatible
server on 127.0.0.1, for other programs (``exapt.evolve.serving.ModelServer``)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    policy: Annotated[
        str | None, typer.Option(help="a policy name, or a line (its promoted policy)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="serve this model string instead (local, local:PATH...)")
    ] = None,
    port: Annotated[int, typer.Option(help="port to listen on (0: a free one)")] = 8011,
    host: Annotated[
        str, typer.Option(help="address to listen on; the server has no authentication")
    ] = "127.0.0.1",
) -> None:
    """Serve a policy over HTTP (/v1/completions, /v1/chat/completions, /v1/models, /health)
    until Ctrl-C; requests are answered as exapt's agents are (same template, same adapter).

    Example: exapt serve --policy humaneval --port 8011
    """
    from exapt.commands.runs import make_console
    from exapt.engine.resolve import resolve_model_name
    from exapt.errors import ConfigError
    from exapt.evolve.serving import ModelServer

    if (policy is None) == (model is None):
        raise ConfigError("give one of --policy NAME or --model M", hint="e.g. --policy he-r1")
    chosen = resolve_model_name(f"policy:{policy}" if policy else str(model), None)
    err = make_console(stderr=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {host}: anyone who reaches it can use it")
    try:
        server = ModelServer(chosen, host=host, port=port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    err.print(f"serving [bold]{chosen.name}[/] at {server.url} (Ctrl-C stops)", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err.print("stopped")
    finally:
        server.stop()
