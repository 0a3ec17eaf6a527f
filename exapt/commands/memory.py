"""``exapt memory stats|search|show|export|prune|reembed``: look into and look after the
long-term memory (reflections, skills, insights in Chroma).

Every command takes ``--memory-url`` (a folder, or ``http://HOST:PORT`` for a Chroma
server; default ``<EXAPT_HOME>/memory``). Bad input (a corrupt folder, another embedder, an
unknown id) exits 2 with a hint via ``cli.main``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from exapt.memory.store import MemoryStore

app = typer.Typer(
    help="Inspect and maintain long-term memory: reflections, skills, insights.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

MemoryUrl = Annotated[
    str | None,
    typer.Option(
        "--memory-url",
        envvar="EXAPT_MEMORY_URL",
        help="memory folder or Chroma server http://HOST:PORT [default: EXAPT_HOME/memory]",
    ),
]
EmbedderOpt = Annotated[
    str | None,
    typer.Option("--embedder", help="embedder the memory was made with [default: as stored]"),
]
KINDS_HELP = "reflection, skill or insight (default: all)"


def _store(url: str | None, embedder: str | None = None) -> MemoryStore:
    from exapt.memory.reembed import stored_embedder
    from exapt.memory.store import MemoryStore

    # Without --embedder, open the memory in the space it was made in: inspecting must not
    # need to know how it was built.
    name = embedder or stored_embedder(url) or "minilm"
    return MemoryStore(url, embedder=name)


def _kinds(kind: str | None) -> list[str]:
    from exapt.errors import ConfigError
    from exapt.memory.store import KIND_OF, KINDS

    if kind is None:
        return list(KINDS)
    if kind in KIND_OF:
        return [KIND_OF[kind]]
    if kind in KINDS:
        return [kind]
    raise ConfigError(f"unknown kind {kind!r}", hint="use reflection, skill or insight")


def _echo_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _summary(kind: str, meta: dict[str, Any], document: str) -> str:
    if kind == "reflections":
        return str(meta.get("text", ""))
    if kind == "skills":
        return f"def {meta.get('name')}{meta.get('signature', '')}: {meta.get('docstring', '')}"
    return str(meta.get("text", document))


@app.command()
def stats(
    memory_url: MemoryUrl = None,
    embedder: EmbedderOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Count what memory holds: reflections (and tasks), skills by status and use, insights."""
    store = _store(memory_url, embedder)
    data: dict[str, Any] = {"where": store.where, "embedder": store.embedder.name}
    reflections = store.iter_items("reflections")
    skills = store.iter_items("skills")
    insights = store.iter_items("insights")
    statuses: dict[str, int] = {}
    for item in skills:
        status = str(item.metadata.get("status", "active"))
        statuses[status] = statuses.get(status, 0) + 1
    data["reflections"] = {
        "total": len(reflections),
        "tasks": len({(i.metadata.get("suite"), i.metadata.get("task_id")) for i in reflections}),
    }
    data["skills"] = {
        "total": len(skills),
        **statuses,
        "used": sum(int(i.metadata.get("used", 0)) for i in skills),
        "passed_when_used": sum(int(i.metadata.get("passed_when_used", 0)) for i in skills),
    }
    data["insights"] = {
        "total": len(insights),
        "strongest": max((int(i.metadata.get("count", 0)) for i in insights), default=0),
    }
    if json_:
        _echo_json(data)
        return
    table = Table(title=f"memory at {store.where} ({store.embedder.name})")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("details")
    table.add_row("reflections", str(len(reflections)), f"{data['reflections']['tasks']} tasks")
    details = ", ".join(f"{k} {v}" for k, v in data["skills"].items() if k != "total")
    table.add_row("skills", str(len(skills)), details)
    table.add_row(
        "insights", str(len(insights)), f"strongest counter {data['insights']['strongest']}"
    )
    Console().print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="text to search for, e.g. a task instruction")],
    kind: Annotated[str | None, typer.Option("--kind", help=KINDS_HELP)] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="results per kind")] = 5,
    memory_url: MemoryUrl = None,
    embedder: EmbedderOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The records nearest to QUERY (cosine similarity), best first.

    Example: exapt memory search "reverse the words of a sentence" --kind skill -k 3
    """
    store = _store(memory_url, embedder)
    results = []
    for name in _kinds(kind):
        if store.count(name):
            results += store.query(name, query, k)
    results.sort(key=lambda i: -(i.similarity or 0))
    if json_:
        _echo_json([i.to_json() for i in results])
        return
    table = Table(title=f"nearest to {query!r}")
    for column in ("similarity", "id", "summary"):
        table.add_column(column)
    for item in results:
        summary = _summary(item.kind, item.metadata, item.document)
        table.add_row(f"{item.similarity:.3f}", item.id, summary[:120])
    Console().print(table)


@app.command()
def show(
    item_id: Annotated[str, typer.Argument(help="an id from search, e.g. skill:reverse_words:v1")],
    memory_url: MemoryUrl = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Print one record in full (JSON): text, metadata, and a skill's code and tests."""
    from exapt.errors import ConfigError

    item = _store(memory_url, embedder).find(item_id)
    if item is None:
        raise ConfigError(
            f"no memory record {item_id!r}", hint="find ids with `exapt memory search`"
        )
    _echo_json(item.to_json())


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="JSONL file to write ('-' for stdout)")],
    kind: Annotated[str | None, typer.Option("--kind", help=KINDS_HELP)] = None,
    memory_url: MemoryUrl = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Write every record as JSON lines (id, kind, document, metadata, payload)."""
    from exapt.paths import atomic_write

    store = _store(memory_url, embedder)
    lines = [
        json.dumps(item.to_json(), default=str)
        for name in _kinds(kind)
        for item in store.iter_items(name)
    ]
    text = "".join(line + "\n" for line in lines)
    if str(path) == "-":
        sys.stdout.write(text)
        return
    atomic_write(path, text)
    Console(stderr=True).print(f"wrote {len(lines)} records to {path}")


@app.command()
def prune(
    min_uses: Annotated[int, typer.Option(help="retire only skills used at least this often")] = 5,
    min_rate: Annotated[
        float, typer.Option(help="retire skills whose pass rate when used is below this")
    ] = 0.2,
    drop: Annotated[bool, typer.Option("--drop", help="also delete retired skills")] = False,
    memory_url: MemoryUrl = None,
    embedder: EmbedderOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Retire skills that are used but rarely help; with --drop, delete retired ones."""
    from exapt.memory.skills import SkillLibrary

    done = SkillLibrary(_store(memory_url, embedder)).prune(
        min_uses=min_uses, min_rate=min_rate, drop=drop
    )
    if json_:
        _echo_json(done)
    else:
        Console().print(f"retired {done['retired']} skills, dropped {done['dropped']}")


@app.command()
def reembed(
    embedder: Annotated[
        str, typer.Option("--embedder", help="minilm or litellm:<embedding model>")
    ] = "minilm",
    memory_url: MemoryUrl = None,
) -> None:
    """Re-embed every record with EMBEDDER (after changing embedding model)."""
    from exapt.memory.reembed import reembed as reembed_store

    counts = reembed_store(memory_url, embedder)
    Console().print(
        f"memory now embedded with {embedder}: "
        + ", ".join(f"{n} {kind}" for kind, n in counts.items())
    )
