"""Retrieval benchmark: peers side by side on every labelled corpus, and search latency per stage on synthetic
collections.

    python -m bench.retrieval [--corpora sample,articles,python-docs,python-howto]
        [--max-questions N] [--work DIR] [--sizes 10000] [--queries 200] [--no-peers] [--smoke] [--seed 0] [--json]
    (or: localrag bench retrieval)

Side by side, per corpus (bench.retrieval_quality.corpora), in one run over OUR stored chunks and their
stored MiniLM vectors: our hybrid (the default settings), dense and lexical modes, txtai's hybrid index and
LangChain's EnsembleRetriever (BM25Retriever + FAISS, 0.5/0.5). Quality per split (dev: what the defaults were
chosen on; test: held out) as R@5, MRR@10 (RR@10) and nDCG@10 through ir-measures, and per-query latency p50/p95 as
ratios against our hybrid, the systems interleaved query by query. The goals check issue 14's acceptance on the
test halves.

Synthetic collections (10k chunks by default) are written straight into a temporary data dir through the Store
(generated texts of about 150 words from a Zipf-distributed vocabulary, random unit-norm fp16 embeddings), so no
corpus has to be embedded; queries are embedded by the real MiniLM model, as in use. Per mode: the stage split
(filter / embed / dense / lexical / fusion / hydrate), the call's own overhead, and `not_embed` (everything but the
query embedding, the part this code owns); bm25s against rank-bm25 on the same tokens. `--smoke` is a tiny run
(500 synthetic chunks, the sample corpus, 6 questions per split) for CI.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
COLLECTION = "bench"
K = 10  # k of every run: the @10 measures see ten hits, and R@5 is their top 5
STAGES = ("filter", "embed", "dense", "lexical", "fusion", "hydrate", "total")
MODES: dict[str, dict[str, Any]] = {
    "hybrid": {"mode": "hybrid"},  # the default fusion (Settings)
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "dense": {"mode": "dense"},
    "lexical": {"mode": "lexical"},
    "hybrid+filter": {"mode": "hybrid", "filters": {"sources": ["doc-0000*.txt"]}},  # 100 documents
}
RANK_BM25_FULL_UP_TO = 20_000  # above this many chunks rank-bm25 gets only RANK_BM25_FEW queries
RANK_BM25_FEW = 20
GOAL_BM25S_SPEEDUP = 50.0
GOAL_NOT_EMBED_MS = 5.0  # everything but the query embedding, p50, at 10k chunks
SMOKE = {"sizes": (500,), "queries": 5, "corpora": ("sample",), "max_questions": 6}


# --- synthetic corpus ------------------------------------------------------------------------------------------
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]


def make_vocabulary(n_rare: int = 60_000, s: float = 1.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Words of data/sample (most frequent first), then generated rare tokens; Zipf probabilities by rank."""
    counts: Counter[str] = Counter()
    for p in sorted(SAMPLE.glob("*")):
        if p.suffix in (".md", ".txt", ".ttl"):
            counts.update(w.casefold() for w in re.findall(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]", p.read_text()))
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    seen = set(words)
    rng = np.random.default_rng(seed + 7919)
    target = len(words) + n_rare
    while len(words) < target:
        w = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), int(rng.integers(2, 5))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    p = ranks**-s
    return np.array(words, dtype=object), p / p.sum()


def make_texts(rng: np.random.Generator, vocab: np.ndarray, p: np.ndarray, n: int,
               words: tuple[int, int] = (120, 180)) -> list[str]:
    lengths = rng.integers(words[0], words[1] + 1, n)
    flat = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=p)]
    out, pos = [], 0
    for n_w in lengths:
        out.append(" ".join(flat[pos : pos + n_w]).capitalize() + ".")
        pos += n_w
    return out


def make_queries(rng: np.random.Generator, vocab: np.ndarray, p: np.ndarray, n: int) -> list[str]:
    """2-6 words each, drawn from the same Zipf distribution, stopwords left out (people type content words)."""
    from localrag.index.lexical import STOPWORDS

    keep = np.array([w not in STOPWORDS and len(w) > 2 for w in vocab])
    q_p = np.where(keep, p, 0.0)
    q_p /= q_p.sum()
    return [" ".join(vocab[rng.choice(len(vocab), size=int(rng.integers(2, 7)), p=q_p)]) for _ in range(n)]


def random_unit_fp16(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float16)


def build_collection(data_dir: Path, n_chunks: int, rng: np.random.Generator, vocab: np.ndarray, p: np.ndarray,
                     chunks_per_doc: int = 10, batch: int = 10_000) -> dict[str, Any]:
    """Write a synthetic collection straight into the store of `data_dir` and bump its corpus_version, so that the
    next Rag.open has to build FAISS and BM25 from the stored rows (as after a crash or a copy)."""
    from sqlalchemy import insert, update

    from localrag.index.store import ChunkRow, CollectionRow, DocumentRow, Store

    t0 = time.perf_counter()
    store = Store.sqlite(data_dir / "localrag.sqlite")
    with store.session() as s:
        coll = CollectionRow(name=COLLECTION, embedding_model=MODEL_ID, embedding_dim=DIM, chunk_tokens=200,
                             chunk_overlap=32)
        s.add(coll)
        s.flush()
        coll_id = coll.id
    n_docs = math.ceil(n_chunks / chunks_per_doc)
    t_gen = 0.0
    next_id = 1
    for d0 in range(0, n_docs, batch // chunks_per_doc):
        docs = list(range(d0, min(n_docs, d0 + batch // chunks_per_doc)))
        n_here = min(n_chunks, docs[-1] * chunks_per_doc + chunks_per_doc) - docs[0] * chunks_per_doc
        tg = time.perf_counter()
        texts = make_texts(rng, vocab, p, n_here)
        vecs = random_unit_fp16(rng, n_here)
        t_gen += time.perf_counter() - tg
        doc_rows, chunk_rows = [], []
        for d in docs:
            first = d * chunks_per_doc
            n_in_doc = min(chunks_per_doc, n_chunks - first)
            doc_rows.append({
                "id": d + 1, "collection_id": coll_id, "source": f"/synthetic/doc-{d:06d}.txt", "kind": "text",
                "sha256": hashlib.sha256(f"doc-{d}".encode()).hexdigest(), "size": 0, "mtime": 0.0,
                "status": "ok", "n_chunks": n_in_doc,
            })
            for o in range(n_in_doc):
                j = first + o - docs[0] * chunks_per_doc
                text = texts[j]
                chunk_rows.append({
                    "id": next_id, "collection_id": coll_id, "document_id": d + 1, "ordinal": o, "text": text,
                    "n_tokens": text.count(" ") + 1, "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                    "embedding": vecs[j].tobytes(),
                })
                next_id += 1
        with store.session() as s:
            s.execute(insert(DocumentRow), doc_rows)
            s.execute(insert(ChunkRow), chunk_rows)
    with store.session() as s:
        s.execute(update(CollectionRow).where(CollectionRow.id == coll_id).values(corpus_version=1))
    store.engine.dispose()
    total = time.perf_counter() - t0
    return {"chunks": n_chunks, "documents": n_docs, "generate_s": t_gen, "write_s": total - t_gen,
            "db_mb": (data_dir / "localrag.sqlite").stat().st_size / 2**20}


# --- measuring -------------------------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    return {"p50": pct(values, 50) * 1e3, "p95": pct(values, 95) * 1e3, "mean": statistics.fmean(values) * 1e3}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def embed_probe_ms(embedder: Any, n: int = 20) -> float:
    """p50 of embedding one fixed query: a check that the machine was quiet. On a 2-core VM with another busy
    process, torch's two intra-op threads make this tens of times slower than on an idle machine."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        embedder.encode(["how deep is the harbour channel at low water"])
        times.append(time.perf_counter() - t)
    return pct(times, 50) * 1e3


def search_latency(rag: Any, queries: list[str], kw: dict[str, Any], k: int = K) -> dict[str, Any]:
    """Per-stage p50/p95 (ms) from SearchResults.timings, plus `call`: the wall time of rag.search itself."""
    rag.search("warm up query", k=k, collection=COLLECTION, rerank=False, **kw)
    stage: dict[str, list[float]] = {s: [] for s in STAGES}
    call: list[float] = []
    hits = 0
    for q in queries:
        t = time.perf_counter()
        res = rag.search(q, k=k, collection=COLLECTION, rerank=False, **kw)
        call.append(time.perf_counter() - t)
        hits += len(res)
        for s in STAGES:
            if s in res.timings:
                stage[s].append(res.timings[s])
    out: dict[str, Any] = {s: summary_ms(v) for s, v in stage.items() if v}
    out["call"] = summary_ms(call)
    # what is not the model: the whole call less the query embedding, and the call's own overhead (collection
    # lookup, index version check, parameter checks) outside the searcher's stages
    out["not_embed"] = summary_ms([c - e for c, e in zip(call, stage["embed"], strict=True)] if stage["embed"]
                                  else call)
    out["overhead"] = summary_ms([c - t for c, t in zip(call, stage["total"], strict=True)])
    out["queries"] = len(queries)
    out["mean_hits"] = hits / max(1, len(queries))
    return out


def bm25_compare(ids: np.ndarray, texts: list[str], queries: list[str], rank_queries: int) -> dict[str, Any]:
    """bm25s and rank-bm25 through lexical_class (identical tokens): build time, queries/s, top-10 agreement."""
    from localrag.index.lexical import lexical_class, tokenize

    t = time.perf_counter()
    for x in texts:
        tokenize(x)
    t_tok = time.perf_counter() - t
    out: dict[str, Any] = {"chunks": len(texts), "tokenize_s": t_tok}
    tops: dict[str, list[list[int]]] = {}
    for backend, n_q in (("bm25s", len(queries)), ("rank-bm25", min(rank_queries, len(queries)))):
        idx = lexical_class(backend)()
        t = time.perf_counter()
        idx.build(ids, texts)
        build = time.perf_counter() - t
        idx.search(queries[0], K)  # warm-up (rank-bm25 has no lazy state; bm25s touches its arrays)
        t = time.perf_counter()
        tops[backend] = [idx.search(q, K)[1].tolist() for q in queries[:n_q]]
        elapsed = time.perf_counter() - t
        out[backend] = {"build_s": build, "queries": n_q, "query_s": elapsed, "qps": n_q / elapsed,
                        "ms_per_query": elapsed / n_q * 1e3}
        del idx
        gc.collect()
    n_cmp = len(tops["rank-bm25"])
    agree = [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(tops["bm25s"][:n_cmp], tops["rank-bm25"],
                                                                  strict=True)]
    out["top10_overlap"] = statistics.fmean(agree) if agree else float("nan")
    out["qps_ratio"] = out["bm25s"]["qps"] / out["rank-bm25"]["qps"]
    out["build_ratio"] = out["rank-bm25"]["build_s"] / out["bm25s"]["build_s"]
    return out


def latency_at_size(n_chunks: int, n_queries: int, embedder: Any, seed: int, vocab: np.ndarray, p: np.ndarray,
                    log: Callable[[str], None]) -> dict[str, Any]:
    from localrag.app.rag import Rag

    rng = np.random.default_rng(seed + n_chunks)
    queries = make_queries(np.random.default_rng(seed + 1), vocab, p, n_queries)
    work = Path(tempfile.mkdtemp(prefix="localrag-bench-retrieval-"))
    out: dict[str, Any] = {"chunks": n_chunks}
    try:
        log(f"[{n_chunks:,} chunks] writing the synthetic collection ...")
        out["corpus"] = build_collection(work, n_chunks, rng, vocab, p)

        log(f"[{n_chunks:,} chunks] first open + first search (indexes built from the store) ...")
        t = time.perf_counter()
        rag = Rag.open(work, embedder=embedder)
        t_open = time.perf_counter() - t
        t = time.perf_counter()
        rag.search(queries[0], k=K, collection=COLLECTION, rerank=False)
        t_first = time.perf_counter() - t
        health = rag.status()["collections"][0]["index"]
        rag.close()
        del rag
        gc.collect()
        t = time.perf_counter()
        rag = Rag.open(work, embedder=embedder)
        t_reopen = time.perf_counter() - t
        t = time.perf_counter()
        rag.search(queries[0], k=K, collection=COLLECTION, rerank=False)
        t_re_first = time.perf_counter() - t
        out["cold"] = {"open_s": t_open, "first_search_s": t_first, "reopen_s": t_reopen,
                       "reopen_first_search_s": t_re_first, "index": health}

        out["modes"] = {}
        for name, kw in MODES.items():
            log(f"[{n_chunks:,} chunks] {n_queries} queries, {name} ...")
            out["modes"][name] = search_latency(rag, queries, kw)

        coll = rag.store.collection(COLLECTION)
        ids, texts = rag.store.chunk_texts(coll.id)
        rag.close()
        del rag
        gc.collect()  # the search indexes go before the two BM25 builds below
        rank_q = n_queries if n_chunks <= RANK_BM25_FULL_UP_TO else RANK_BM25_FEW
        log(f"[{n_chunks:,} chunks] bm25s vs rank-bm25 ({n_queries} / {rank_q} queries) ...")
        out["bm25"] = bm25_compare(ids, texts, queries, rank_q)
        del texts, ids
    finally:
        shutil.rmtree(work, ignore_errors=True)
        gc.collect()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


# --- peers, side by side over one corpus's stored chunks --------------------------------------------------------
def peers_available() -> dict[str, str | None]:
    """Peer name -> None when it can run, else why not (the bench extra installs them)."""
    hint = " (install the bench extra: pip install -e '.[bench]')"
    out: dict[str, str | None] = {}
    try:
        import txtai  # noqa: F401
        out["txtai hybrid"] = None
    except ImportError as exc:
        out["txtai hybrid"] = f"txtai not importable: {exc}{hint}"
    try:
        import langchain.retrievers  # noqa: F401
        import langchain_community.retrievers  # noqa: F401
        import langchain_community.vectorstores  # noqa: F401
        import rank_bm25  # noqa: F401
        out["langchain ensemble"] = None
    except ImportError as exc:
        out["langchain ensemble"] = f"langchain not importable: {exc}{hint}"
    return out


class StoredVectors:
    """The stored vector of a chunk text, else the text embedded by our embedder (a query): how the peers get the
    same MiniLM vectors as ours without embedding the corpus again."""

    def __init__(self, texts: list[str], vecs: np.ndarray, embedder: Any) -> None:
        self.by_text = {t: v for t, v in zip(texts, np.asarray(vecs, dtype=np.float32), strict=True)}
        self.embedder = embedder

    def __call__(self, inputs: Sequence[str]) -> np.ndarray:
        missing = [x for x in inputs if x not in self.by_text]
        fresh = dict(zip(missing, self.embedder.encode(missing), strict=True)) if missing else {}
        return np.array([self.by_text[x] if x in self.by_text else fresh[x] for x in inputs], dtype=np.float32)


def make_txtai(ids: np.ndarray, texts: list[str], vecs: np.ndarray, embedder: Any) -> Any:
    """txtai's hybrid index (its BM25 with its default normalisation + its dense index, its convex fusion) over our
    chunks. The vectors are ours (txtai's `external` method with a transform returning the stored vector of a chunk
    text and our MiniLM embedding of a query), which is what `Embeddings(path=MODEL_DIR, hybrid=True,
    content=True)` computes, without embedding the corpus a second time."""
    from txtai import Embeddings

    transform = StoredVectors(texts, vecs, embedder)
    emb = Embeddings(method="external", transform=lambda xs: transform(xs), hybrid=True, content=True)
    emb.index([(int(i), t, None) for i, t in zip(ids, texts, strict=True)])
    return emb


def make_ensemble(ids: np.ndarray, texts: list[str], vecs: np.ndarray, embedder: Any, k: int = K) -> Any:
    """LangChain's EnsembleRetriever (BM25Retriever + FAISS vector store, weights 0.5/0.5, each k) over our chunks
    and their stored vectors; the query is embedded by our MiniLM through an Embeddings adapter."""
    from langchain.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    vectors = StoredVectors(texts, vecs, embedder)

    class OurEmbeddings(Embeddings):
        def embed_documents(self, xs: list[str]) -> list[list[float]]:
            return vectors(xs).tolist()

        def embed_query(self, text: str) -> list[float]:
            return vectors([text])[0].tolist()

    metas = [{"chunk_id": int(i)} for i in ids]
    docs = [Document(page_content=x, metadata=m) for x, m in zip(texts, metas, strict=True)]
    bm25 = BM25Retriever.from_documents(docs, k=k)
    store = FAISS.from_embeddings(list(zip(texts, np.asarray(vecs, dtype=np.float32).tolist(), strict=True)),
                                  OurEmbeddings(), metadatas=metas)
    return EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5],
                             id_key="chunk_id")


OURS = {"ours hybrid": {"mode": "hybrid"}, "ours dense": {"mode": "dense"}, "ours lexical": {"mode": "lexical"}}
REFERENCE = "ours hybrid"


def peers_on_corpus(name: str, rag: Any, log: Callable[[str], None], max_questions: int | None = None,
                    peers: bool = True) -> dict[str, Any]:
    """Ours (hybrid, dense, lexical; the default settings), txtai's hybrid and LangChain's EnsembleRetriever over
    the chunks stored in `rag`'s default collection: quality per split (R@5, MRR@10, nDCG@10 with ir-measures) and
    per-query latency, the systems interleaved query by query so that a busy moment hits all of them."""
    from bench.retrieval_quality import load_split
    from localrag.eval.retrieval_metrics import measure, resolve

    coll = rag.store.collection("default")
    ids, texts = rag.store.chunk_texts(coll.id)
    vecs = rag.store.embeddings(ids, coll.embedding_dim)
    splits = {sp: load_split(name, sp)[:max_questions] for sp in ("dev", "test")}
    questions = [q for sp in ("dev", "test") for q in splits[sp]]
    units = resolve(rag.store, coll.id, questions)
    out: dict[str, Any] = {"chunks": len(ids), "questions": {sp: len(qs) for sp, qs in splits.items()},
                           "answerable": {sp: sum(q.answerable for q in qs) for sp, qs in splits.items()},
                           "build_s": {}, "skipped": {}}

    systems: dict[str, Callable[[str], list[int]]] = {}
    embed_s: list[float] = []

    def ours(kw: dict[str, Any], keep_embed: bool = False) -> Callable[[str], list[int]]:
        def search(q: str) -> list[int]:
            res = rag.search(q, k=K, collection="default", rerank=False, **kw)
            if keep_embed:
                embed_s.append(res.timings.get("embed", 0.0))
            return [h.chunk_id for h in res]
        return search

    for sys_name, kw in OURS.items():
        systems[sys_name] = ours(kw, keep_embed=sys_name == REFERENCE)
    for peer, why in (peers_available() if peers else {p: "peers not requested" for p in
                                                        ("txtai hybrid", "langchain ensemble")}).items():
        if why:
            out["skipped"][peer] = why
            continue
        log(f"[{name}] building {peer} over {len(ids)} chunks ...")
        t = time.perf_counter()
        if peer == "txtai hybrid":
            emb = make_txtai(ids, texts, vecs, rag.embedder)
            systems[peer] = lambda q, emb=emb: [int(r["id"]) for r in emb.search(q, K)]
        else:
            ens = make_ensemble(ids, texts, vecs, rag.embedder)
            systems[peer] = lambda q, ens=ens: [int(d.metadata["chunk_id"]) for d in ens.invoke(q)][:K]
        out["build_s"][peer] = time.perf_counter() - t

    log(f"[{name}] {len(questions)} questions x {len(systems)} systems ...")
    for fn in systems.values():
        fn("warm up query")
    embed_s.clear()
    runs: dict[str, dict[str, list[int]]] = {s: {} for s in systems}
    times: dict[str, list[float]] = {s: [] for s in systems}
    for q in questions:
        for sys_name, fn in systems.items():
            t = time.perf_counter()
            runs[sys_name][q.id] = fn(q.query)
            times[sys_name].append(time.perf_counter() - t)
    quality: dict[str, dict[str, dict[str, float]]] = {}
    per_query: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for sys_name in systems:
        quality[sys_name], per_query[sys_name] = {}, {}
        for sp, qs in splits.items():
            if any(q.answerable for q in qs):
                m = measure(qs, units, runs[sys_name], METRICS)
                quality[sys_name][sp] = {x: m["overall"][x] for x in METRICS}
                per_query[sys_name][sp] = m["per_query"]
    paired = {leg: {sp: paired_difference(per_query[REFERENCE][sp], per_query[leg][sp])
                    for sp in per_query[REFERENCE]}
              for leg in ("ours dense", "ours lexical")}
    ref = summary_ms(times[REFERENCE])
    latency = {}
    for sys_name, ts in times.items():
        lat = summary_ms(ts)
        latency[sys_name] = {**lat, "p50_vs_ours": lat["p50"] / ref["p50"], "p95_vs_ours": lat["p95"] / ref["p95"]}
    out.update(quality=quality, paired=paired, latency=latency, ours_embed_ms=summary_ms(embed_s) if embed_s else None)
    return out


METRICS = ("R@5", "RR@10", "nDCG@10")


def paired_difference(ours: dict[str, dict[str, float]], other: dict[str, dict[str, float]], n_boot: int = 10_000,
                      seed: int = 0) -> dict[str, dict[str, float]]:
    """Per metric, ours − other over the same questions: the mean difference, a 95 % paired bootstrap interval
    (questions resampled with replacement), and how many questions each side wins. How far a gap is from noise."""
    qids = sorted(ours)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(qids), size=(n_boot, len(qids)))
    out: dict[str, dict[str, float]] = {}
    for x in METRICS:
        d = np.array([ours[q][x] - other[q][x] for q in qids])
        boots = d[picks].mean(axis=1)
        out[x] = {"diff": float(d.mean()), "lo": float(np.percentile(boots, 2.5)),
                  "hi": float(np.percentile(boots, 97.5)), "ours_better": int((d > 1e-12).sum()),
                  "other_better": int((d < -1e-12).sum()), "n": len(qids)}
    return out


def acceptance(corpora: dict[str, Any], split: str = "test") -> dict[str, Any]:
    """Issue 14's acceptance on one split, per metric: the default hybrid >= the best single leg on every corpus,
    ahead of it on average (the per-corpus best leg), and >= txtai's hybrid on average."""
    out: dict[str, Any] = {}
    names = [n for n, c in corpora.items() if split in c["quality"].get(REFERENCE, {})]
    if not names:
        return out
    for m in METRICS:
        ours = {n: corpora[n]["quality"][REFERENCE][split][m] for n in names}
        best_leg = {n: max(corpora[n]["quality"][leg][split][m] for leg in ("ours dense", "ours lexical"))
                    for n in names}
        row: dict[str, Any] = {
            "hybrid": ours, "best_single_leg": best_leg,
            "every_corpus": all(ours[n] >= best_leg[n] - 1e-9 for n in names),
            "mean_hybrid": statistics.fmean(ours.values()), "mean_best_leg": statistics.fmean(best_leg.values()),
        }
        row["ahead_on_average"] = row["mean_hybrid"] > row["mean_best_leg"]
        if all("txtai hybrid" in corpora[n]["quality"] for n in names):
            row["mean_txtai"] = statistics.fmean(corpora[n]["quality"]["txtai hybrid"][split][m] for n in names)
            row["vs_txtai_on_average"] = row["mean_hybrid"] >= row["mean_txtai"] - 1e-9
        out[m] = row
    return out


# --- the run ---------------------------------------------------------------------------------------------------
def run(sizes: Sequence[int] = (10_000,), n_queries: int = 200, peers: bool = True, seed: int = 0,
        embedder: Any = None, corpora: Sequence[str] | None = None, max_questions: int | None = None,
        work: Path | None = None, rags: dict[str, Any] | None = None, verbose: bool = False) -> dict[str, Any]:
    """Run the benchmark. `embedder`: a loaded index.embedder.Embedder to share; `corpora`: the labelled corpora
    for the side-by-side part (default: every one available); `work`: keep the ingested corpora there (reused by
    the next run); `rags`: corpus name -> an open Rag that already holds it (tests pass the session's sample)."""
    from bench.retrieval_quality import corpora as available
    from bench.retrieval_quality import open_corpus
    from localrag.app.config import load_settings
    from localrag.index.embedder import Embedder

    def log(msg: str) -> None:
        if verbose:
            print(msg, file=sys.stderr, flush=True)

    t_run = time.perf_counter()
    t = time.perf_counter()
    if embedder is None:
        embedder = Embedder()
    embedder.encode(["warm-up"])
    model_load_s = time.perf_counter() - t
    if embedder.dim != DIM:
        raise RuntimeError(f"the embedder has dimension {embedder.dim}; this benchmark assumes {DIM} (MiniLM)")
    vocab, p = make_vocabulary(seed=seed)
    sizes = sorted(int(s) for s in sizes)
    names = list(corpora) if corpora is not None else available()
    st = load_settings()
    result: dict[str, Any] = {
        "config": {"sizes": sizes, "queries": n_queries, "k": K, "seed": seed, "corpora": names,
                   "max_questions": max_questions, "vocabulary": len(vocab),
                   "rank_bm25_full_up_to": RANK_BM25_FULL_UP_TO, "rank_bm25_few": RANK_BM25_FEW,
                   "settings": {"fusion": st.search.fusion, "convex_alpha": st.search.convex_alpha,
                                "fusion_norm": st.search.fusion_norm, "fusion_adaptive": st.search.fusion_adaptive,
                                "candidates": st.search.candidates, "rrf_k": st.search.rrf_k,
                                "lexical_backend": st.storage.lexical_backend}},
        "machine": {"cpus": os.cpu_count(), "device": embedder.device, "python": sys.version.split()[0],
                    "loadavg_start": os.getloadavg()[0], "embed_probe_ms_start": embed_probe_ms(embedder)},
        "model_load_s": model_load_s,
        "sizes": {},
        "corpora": {},
    }
    for n in sizes:
        result["sizes"][str(n)] = latency_at_size(n, n_queries, embedder, seed, vocab, p, log=log)
    tmp = None
    if work is None:
        tmp = tempfile.mkdtemp(prefix="localrag-bench-corpora-")
        work = Path(tmp)
    try:
        for name in names:
            given = (rags or {}).get(name)
            if given is None:
                log(f"[{name}] ingesting (unchanged files are skipped) ...")
                t = time.perf_counter()
                rag = open_corpus(name, Path(work) / name, embedder=embedder)
                ingest_s = time.perf_counter() - t
            else:
                rag, ingest_s = given, 0.0
            try:
                result["corpora"][name] = peers_on_corpus(name, rag, log, max_questions=max_questions, peers=peers)
                result["corpora"][name]["ingest_s"] = ingest_s
            finally:
                if given is None:
                    rag.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    result["goals"] = goals(result)
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    result["machine"]["embed_probe_ms_end"] = embed_probe_ms(embedder)
    result["wall_s"] = time.perf_counter() - t_run
    return result


def goals(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    speedups = {n: s["bm25"]["qps_ratio"] for n, s in res["sizes"].items()}
    if speedups:
        out["bm25s_vs_rank_bm25"] = {"goal": f">= {GOAL_BM25S_SPEEDUP:g}x queries/s", "qps_ratio": speedups,
                                     "met": all(v >= GOAL_BM25S_SPEEDUP for v in speedups.values())}
    at10k = res["sizes"].get("10000")
    if at10k:
        ms = at10k["modes"]["hybrid"]["not_embed"]["p50"]
        out["not_embed_at_10k"] = {"goal": f"hybrid p50 less the query embedding <= {GOAL_NOT_EMBED_MS:g} ms at "
                                   "10k chunks", "ms": ms, "met": ms <= GOAL_NOT_EMBED_MS}
    acc = acceptance(res["corpora"]) if res["corpora"] else {}
    if acc:
        out["hybrid_vs_best_leg_every_corpus"] = {
            "goal": "default hybrid >= the best single leg on every corpus's test half (R@5, MRR@10, nDCG@10)",
            "met": all(r["every_corpus"] for r in acc.values()),
            "detail": {m: {n: round(r["hybrid"][n] - r["best_single_leg"][n], 4) for n in r["hybrid"]}
                       for m, r in acc.items()}}
        out["hybrid_ahead_on_average"] = {
            "goal": "default hybrid ahead of the best single leg on average (test halves)",
            "met": all(r["ahead_on_average"] for r in acc.values()),
            "detail": {m: [round(r["mean_hybrid"], 4), round(r["mean_best_leg"], 4)] for m, r in acc.items()}}
        if all("vs_txtai_on_average" in r for r in acc.values()):
            out["hybrid_vs_txtai_on_average"] = {
                "goal": "default hybrid >= txtai hybrid on average (test halves)",
                "met": all(r["vs_txtai_on_average"] for r in acc.values()),
                "detail": {m: [round(r["mean_hybrid"], 4), round(r["mean_txtai"], 4)] for m, r in acc.items()}}
    return out


# --- output ----------------------------------------------------------------------------------------------------
def format_report(res: dict[str, Any]) -> str:
    L: list[str] = []
    m = res["machine"]
    L.append(f"retrieval benchmark: {m['cpus']} CPUs, device {m['device']}, Python {m['python']}; "
             f"model load {res['model_load_s']:.1f} s; k={K}; 1-min load average {m['loadavg_start']:.2f} at start, "
             f"{m['loadavg_end']:.2f} at end; one-query embed p50 {m['embed_probe_ms_start']:.1f} ms at start, "
             f"{m['embed_probe_ms_end']:.1f} ms at end (a check that no other process competed for the CPUs)")
    L.append("search settings: " + ", ".join(f"{k} {v}" for k, v in res["config"]["settings"].items()))
    for name, c in res["corpora"].items():
        L.append("")
        L.append(f"== {name}: {c['chunks']:,} chunks; questions dev {c['questions']['dev']} ({c['answerable']['dev']} "
                 f"answerable), test {c['questions']['test']} ({c['answerable']['test']} answerable); peers build "
                 + (", ".join(f"{p} {s:.1f} s" for p, s in c["build_s"].items()) or "-"))
        for peer, why in c["skipped"].items():
            L.append(f"   {peer}: skipped, {why}")
        head = "".join(f"{sp + ' ' + x:>13}" for sp in ("dev", "test") for x in METRICS)
        L.append(f"{'system':<20}{head}{'p50 ms':>9}{'p95 ms':>9}{'p50/ours':>10}{'p95/ours':>10}")
        for sys_name, lat in c["latency"].items():
            q = c["quality"][sys_name]
            cells = "".join(f"{q[sp][x]:>13.3f}" if sp in q else f"{'-':>13}" for sp in ("dev", "test")
                            for x in METRICS)
            L.append(f"{sys_name:<20}{cells}{lat['p50']:>9.2f}{lat['p95']:>9.2f}{lat['p50_vs_ours']:>10.2f}"
                     f"{lat['p95_vs_ours']:>10.2f}")
        if c.get("ours_embed_ms"):
            L.append(f"   (ours hybrid: the query embedding is {c['ours_embed_ms']['p50']:.2f} ms of its p50)")
        for leg, by_split in c.get("paired", {}).items():
            if "test" in by_split:
                cells = [f"{x} {d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] {d['ours_better']}/{d['other_better']}"
                         for x, d in by_split["test"].items()]
                L.append(f"   test half, ours hybrid − {leg} (mean [95 % paired bootstrap], questions won/lost): "
                         + "; ".join(cells))
    for n, s in res["sizes"].items():
        c, cold = s["corpus"], s["cold"]
        L.append("")
        L.append(f"== {int(n):,} synthetic chunks ({c['documents']:,} documents, SQLite {c['db_mb']:.0f} MB; "
                 f"generated in {c['generate_s']:.1f} s, written in {c['write_s']:.1f} s)")
        L.append(f"first Rag.open {cold['open_s']:.2f} s; first search (builds FAISS + BM25 from the store, saves "
                 f"them) {cold['first_search_s']:.2f} s; reopen {cold['reopen_s']:.2f} s + first search from saved "
                 f"indexes {cold['reopen_first_search_s']:.2f} s")
        L.append("latency in ms, p50 / p95 (stages from SearchResults.timings; call = wall time of rag.search; "
                 "not_embed = call less the query embedding; overhead = call less the searcher's total)")
        cols = (*STAGES, "call", "not_embed", "overhead")
        L.append(f"{'mode':<15}" + "".join(f"{c_:>15}" for c_ in cols))
        for mode, r in s["modes"].items():
            cells = [f"{r[c_]['p50']:.2f} / {r[c_]['p95']:.2f}" if c_ in r else "-" for c_ in cols]
            L.append(f"{mode:<15}" + "".join(f"{x:>15}" for x in cells))
        b = s["bm25"]
        L.append(f"BM25 on identical tokens (tokenizing all chunks once: {b['tokenize_s']:.2f} s, part of both builds)")
        L.append(f"{'backend':<12}{'build s':>10}{'queries':>9}{'q/s':>10}{'ms/query':>10}")
        for be in ("bm25s", "rank-bm25"):
            r = b[be]
            L.append(f"{be:<12}{r['build_s']:>10.2f}{r['queries']:>9}{r['qps']:>10.1f}{r['ms_per_query']:>10.2f}")
        note = "" if b["rank-bm25"]["queries"] == b["bm25s"]["queries"] else (
            f" (rank-bm25 timed on its first {b['rank-bm25']['queries']} queries only: it is slow at this size)")
        L.append(f"bm25s / rank-bm25: {b['qps_ratio']:.1f}x queries/s, {b['build_ratio']:.2f}x build speed; "
                 f"top-10 overlap {b['top10_overlap']:.2f}{note}")
    L.append("")
    L.append("goals")
    for name, g in res["goals"].items():
        detail = {k: v for k, v in g.items() if k not in ("goal", "met")}
        L.append(f"  {name}: {g['goal']}: {'MET' if g['met'] else 'MISSED'}  {json.dumps(_round(detail))}")
    L.append(f"peak RSS {res['peak_rss_mb']:.0f} MB; wall time {res['wall_s']:.0f} s")
    return "\n".join(L)


def _round(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 4) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _round(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_round(v) for v in obj]
    return obj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000", help="synthetic collection sizes in chunks, comma-separated "
                    "(0 or empty: none)")
    ap.add_argument("--queries", type=int, default=200, help="queries per mode and synthetic size")
    ap.add_argument("--corpora", default=None, help="labelled corpora side by side, comma-separated (default: every "
                    "one available: sample, articles, python-docs); 'none' for none")
    ap.add_argument("--max-questions", type=int, help="only the first N questions of each split")
    ap.add_argument("--work", type=Path, help="keep the ingested corpora here (the next run reuses them)")
    ap.add_argument("--no-peers", action="store_true", help="ours only, without txtai and LangChain")
    ap.add_argument("--smoke", action="store_true", help="tiny: 500 synthetic chunks, the sample corpus, 6 questions "
                    "per split (CI keeps the code alive with it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)
    try:
        sizes = [int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip() and x.strip() != "0"]
    except ValueError:
        ap.error(f"--sizes must be comma-separated integers, not {args.sizes!r}")
    if sizes and min(sizes) < 10:
        ap.error("--sizes: a synthetic collection needs 10 chunks or more")
    if args.queries < 1:
        ap.error("--queries must be at least 1")
    corpora = None if args.corpora is None else [c for c in args.corpora.split(",") if c and c != "none"]
    kw: dict[str, Any] = {"sizes": sizes, "n_queries": args.queries, "corpora": corpora,
                          "max_questions": args.max_questions}
    if args.smoke:
        kw = {"sizes": SMOKE["sizes"], "n_queries": SMOKE["queries"], "corpora": list(SMOKE["corpora"]),
              "max_questions": SMOKE["max_questions"]}
    if kw["corpora"] is not None:
        from bench.retrieval_quality import corpora as available

        unknown = sorted(set(kw["corpora"]) - set(available()))
        if unknown:
            ap.error(f"--corpora: {', '.join(unknown)} not available here (available: {', '.join(available())})")
    res = run(**kw, peers=not args.no_peers, seed=args.seed, work=args.work, verbose=not args.json)
    if args.json:
        print(json.dumps(_round(res), indent=1))
    else:
        print(format_report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
