"""Retrieval benchmark: search latency per stage on synthetic collections of 10k and 100k chunks, bm25s against
rank-bm25 on the same tokens, and (when langchain is installed) LangChain's EnsembleRetriever as a peer, for
quality on the labeled set and for latency.

    python -m localrag.app.bench.retrieval [--sizes 10000,100000] [--queries 200] [--no-peers] [--seed 0] [--json]
    (or: localrag bench retrieval)

The synthetic collections are written straight into a temporary data dir through the Store (generated texts of
about 150 words from a Zipf-distributed vocabulary, random unit-norm fp16 embeddings of the real model's
dimension), so no corpus has to be embedded; queries are embedded by the real MiniLM model, as in use.
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
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
QUERIES_PATH = ROOT / "data" / "eval" / "retrieval.jsonl"

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
COLLECTION = "bench"
K = 10  # k of the latency runs
PEER_K = 5  # k of ours and of each LangChain sub-retriever in the peer comparison
STAGES = ("embed", "dense", "lexical", "fusion", "hydrate", "total")
MODES: dict[str, dict[str, str]] = {
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-convex": {"mode": "hybrid", "fusion": "convex"},
    "dense": {"mode": "dense"},
    "lexical": {"mode": "lexical"},
}
RANK_BM25_FULL_UP_TO = 20_000  # above this many chunks rank-bm25 gets only RANK_BM25_FEW queries
RANK_BM25_FEW = 20
GOAL_BM25S_SPEEDUP = 50.0
GOAL_LATENCY_RATIO = 0.5
# latency queries for the sample corpus when the labeled set is not there
FALLBACK_SAMPLE_QUERIES = [
    "lighthouse lens", "tide table spring tides", "sourdough starter feeding", "microgrid battery capacity",
    "council vote on the harbour", "kelp canopy survey", "VHF channel for the harbour", "research vessel",
    "history of Port Wren", "birdwatching at the headland",
]


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
    out["queries"] = len(queries)
    out["mean_hits"] = hits / max(1, len(queries))
    return out


def bm25_compare(ids: np.ndarray, texts: list[str], queries: list[str], rank_queries: int) -> dict[str, Any]:
    """bm25s and rank-bm25 through LexicalIndex (identical tokens): build time, queries/s, top-10 agreement."""
    from localrag.index.lexical import LexicalIndex, tokenize

    t = time.perf_counter()
    for x in texts:
        tokenize(x)
    t_tok = time.perf_counter() - t
    out: dict[str, Any] = {"chunks": len(texts), "tokenize_s": t_tok}
    tops: dict[str, list[list[int]]] = {}
    for backend, n_q in (("bm25s", len(queries)), ("rank-bm25", min(rank_queries, len(queries)))):
        idx = LexicalIndex(backend)
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
                    peers: bool, log: Callable[[str], None]) -> dict[str, Any]:
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
        if peers:
            log(f"[{n_chunks:,} chunks] LangChain EnsembleRetriever latency ...")
            vecs = rag.store.embeddings(ids, DIM)
            out["peer_latency"] = peer_latency(rag, COLLECTION, ids, texts, vecs, embedder, queries)
            del vecs
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


# --- peers: LangChain ------------------------------------------------------------------------------------------
def langchain_available() -> str | None:
    """None when the peer can run, else why not."""
    try:
        import langchain.retrievers  # noqa: F401
        import langchain_community.retrievers  # noqa: F401
        import langchain_community.vectorstores  # noqa: F401
        import rank_bm25  # noqa: F401
    except ImportError as exc:
        return (f"langchain peer skipped: {exc} (install the bench extra: pip install -e '.[bench]', i.e. "
                "langchain>=0.3,<1, langchain-community>=0.3,<0.4, langchain-core<1)")
    return None


def make_ensemble(ids: np.ndarray, texts: list[str], vecs: np.ndarray, embedder: Any, k: int = PEER_K,
                  preprocess: Callable[[str], list[str]] | None = None) -> tuple[Any, float]:
    """LangChain's EnsembleRetriever (BM25Retriever + FAISS vector store, weights 0.5/0.5) over the given chunks and
    their stored embeddings, the query embedded by the same MiniLM through an Embeddings adapter. Returns the
    retriever and its build time in seconds."""
    from langchain.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    class OurEmbeddings(Embeddings):
        last_query_s = 0.0  # time of the latest embed_query, for the latency split

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.encode(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            t = time.perf_counter()
            v = embedder.encode([text])[0].tolist()
            OurEmbeddings.last_query_s = time.perf_counter() - t
            return v

    t = time.perf_counter()
    metas = [{"chunk_id": int(i)} for i in ids]
    docs = [Document(page_content=x, metadata=m) for x, m in zip(texts, metas, strict=True)]
    bm25_kw = {"preprocess_func": preprocess} if preprocess else {}
    bm25 = BM25Retriever.from_documents(docs, k=k, **bm25_kw)
    store = FAISS.from_embeddings(list(zip(texts, np.asarray(vecs, dtype=np.float32).tolist(), strict=True)),
                                  OurEmbeddings(), metadatas=metas)
    ens = EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": k})], weights=[0.5, 0.5],
                            id_key="chunk_id")
    ens_embed_clock[id(ens)] = OurEmbeddings
    return ens, time.perf_counter() - t


ens_embed_clock: dict[int, Any] = {}  # ensemble -> its Embeddings adapter class (holds the last embed time)


def peer_latency(rag: Any, collection: str, ids: np.ndarray, texts: list[str], vecs: np.ndarray, embedder: Any,
                 queries: list[str], rounds: int = 1) -> dict[str, Any]:
    """p50/p95 per query, ours (hybrid rrf, k=5, rerank off) vs the ensemble, interleaved query by query."""
    ens, build_s = make_ensemble(ids, texts, vecs, embedder)
    clock = ens_embed_clock.pop(id(ens))
    ours_t: list[float] = []
    theirs_t: list[float] = []
    ours_rest: list[float] = []  # the same, less the query embedding (which both do with the same model)
    theirs_rest: list[float] = []
    rag.search("warm up query", k=PEER_K, collection=collection, mode="hybrid", fusion="rrf", rerank=False)
    ens.invoke("warm up query")
    for _ in range(rounds):
        for q in queries:
            t = time.perf_counter()
            res = rag.search(q, k=PEER_K, collection=collection, mode="hybrid", fusion="rrf", rerank=False)
            ours_t.append(time.perf_counter() - t)
            ours_rest.append(ours_t[-1] - res.timings.get("embed", 0.0))
            t = time.perf_counter()
            ens.invoke(q)
            theirs_t.append(time.perf_counter() - t)
            theirs_rest.append(theirs_t[-1] - clock.last_query_s)
    ours, theirs = summary_ms(ours_t), summary_ms(theirs_t)
    o_rest, t_rest = summary_ms(ours_rest), summary_ms(theirs_rest)
    return {"chunks": len(ids), "queries": len(ours_t), "langchain_build_s": build_s, "ours": ours,
            "langchain": theirs, "ratio_p50": ours["p50"] / theirs["p50"], "ratio_p95": ours["p95"] / theirs["p95"],
            "ours_without_embed": o_rest, "langchain_without_embed": t_rest,
            "ratio_p50_without_embed": o_rest["p50"] / t_rest["p50"]}


def peers_on_sample(embedder: Any, queries_path: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Quality (labeled set) and latency of ours vs LangChain over the chunks of data/sample."""
    from localrag.app.rag import Rag
    from localrag.eval.retrieval_metrics import METRICS, evaluate_system, load_queries, resolve
    from localrag.index.lexical import tokenize

    out: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="localrag-bench-peers-"))
    try:
        rag = Rag.open(work, embedder=embedder)
        log("[sample] ingesting data/sample ...")
        t = time.perf_counter()
        report = rag.ingest([SAMPLE])
        out["ingest_s"] = time.perf_counter() - t
        out["ingest_failed"] = len(report.failed)
        coll = rag.store.collection("default")
        ids, texts = rag.store.chunk_texts(coll.id)
        vecs = rag.store.embeddings(ids, coll.embedding_dim)
        out["chunks"] = len(ids)

        if queries_path.is_file():
            labeled = load_queries(queries_path)
            units = resolve(rag.store, coll.id, labeled)
            log(f"[sample] quality on {len(labeled)} labeled queries ...")
            ens, _ = make_ensemble(ids, texts, vecs, embedder)
            ens_tok, _ = make_ensemble(ids, texts, vecs, embedder, preprocess=tokenize)

            def lc(retriever: Any) -> Callable[[str], list[Any]]:
                return lambda q: [SimpleNamespace(chunk_id=int(d.metadata["chunk_id"])) for d in retriever.invoke(q)]

            def ours(**kw: Any) -> Callable[[str], list[Any]]:
                # k=10 so that the @10 measures see ten hits; its top 5 is exactly what k=5 returns
                return lambda q: rag.search(q, k=10, collection="default", rerank=False, **kw)

            systems: dict[str, Callable[[str], list[Any]]] = {
                "ours hybrid-rrf": ours(mode="hybrid", fusion="rrf"),
                "ours hybrid-convex": ours(mode="hybrid", fusion="convex"),
                "ours dense": ours(mode="dense"),
                "ours lexical": ours(mode="lexical"),
                # diagnostic: RRF with LangChain's constant (c=60) instead of the configured rrf_k
                "ours hybrid-rrf, rrf_k=60": ours(mode="hybrid", fusion="rrf", rrf_k=60.0),
                "langchain ensemble": lc(ens),
                "langchain ensemble, our tokenizer": lc(ens_tok),
            }
            quality = {}
            for name, fn in systems.items():
                r = evaluate_system(fn, labeled, units)
                quality[name] = {m: r["overall"][m] for m in METRICS}
            out["quality"] = {"queries": len(labeled), "answerable": sum(q.answerable for q in labeled),
                              "metrics": list(METRICS), "systems": quality}
            lat_queries = [q.query for q in labeled]
        else:
            out["quality"] = {"skipped": f"labeled set {queries_path} not found"}
            lat_queries = list(FALLBACK_SAMPLE_QUERIES)
        rounds = max(1, math.ceil(100 / len(lat_queries)))
        log(f"[sample] latency, {rounds} x {len(lat_queries)} queries ...")
        out["latency"] = peer_latency(rag, "default", ids, texts, vecs, embedder, lat_queries, rounds=rounds)
        rag.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# --- the run ---------------------------------------------------------------------------------------------------
def run(sizes: Sequence[int] = (10_000, 100_000), n_queries: int = 200, peers: bool = True, seed: int = 0,
        embedder: Any = None, queries_path: Path = QUERIES_PATH, verbose: bool = False) -> dict[str, Any]:
    """Run the benchmark; `embedder` may be a loaded index.embedder.Embedder to share. Peer latency on the
    synthetic corpus runs at the smallest size only."""
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
    peer_skip = langchain_available() if peers else "peers not requested (--no-peers)"
    sizes = sorted(int(s) for s in sizes)
    st = load_settings()
    result: dict[str, Any] = {
        "config": {"sizes": sizes, "queries": n_queries, "k": K, "peer_k": PEER_K, "seed": seed,
                   "vocabulary": len(vocab), "rank_bm25_full_up_to": RANK_BM25_FULL_UP_TO,
                   "rank_bm25_few": RANK_BM25_FEW,
                   "settings": {"candidates": st.candidates, "rrf_k": st.rrf_k, "convex_alpha": st.convex_alpha,
                                "default_fusion": st.fusion, "lexical_backend": st.lexical_backend}},
        "machine": {"cpus": os.cpu_count(), "device": embedder.device, "python": sys.version.split()[0],
                    "loadavg_start": os.getloadavg()[0], "embed_probe_ms_start": embed_probe_ms(embedder)},
        "model_load_s": model_load_s,
        "sizes": {},
    }
    for n in sizes:
        result["sizes"][str(n)] = latency_at_size(n, n_queries, embedder, seed, vocab, p,
                                                  peers=peer_skip is None and n == sizes[0], log=log)
    if peer_skip is None:
        result["peers"] = peers_on_sample(embedder, Path(queries_path), log)
        result["peers"]["synthetic_latency"] = result["sizes"][str(sizes[0])].pop("peer_latency")
    else:
        result["peers"] = {"skipped": peer_skip}
    result["goals"] = goals(result)
    result["peak_rss_mb"] = peak_rss_mb()
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    result["machine"]["embed_probe_ms_end"] = embed_probe_ms(embedder)
    result["wall_s"] = time.perf_counter() - t_run
    return result


def goals(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    speedups = {n: s["bm25"]["qps_ratio"] for n, s in res["sizes"].items()}
    out["bm25s_vs_rank_bm25"] = {"goal": f">= {GOAL_BM25S_SPEEDUP:g}x queries/s", "qps_ratio": speedups,
                                 "met": all(v >= GOAL_BM25S_SPEEDUP for v in speedups.values())}
    peers = res.get("peers", {})
    if "skipped" in peers:
        return out
    ratios = {"sample": peers["latency"]["ratio_p50"], "synthetic": peers["synthetic_latency"]["ratio_p50"]}
    out["latency_vs_langchain"] = {"goal": f"ours p50 <= {GOAL_LATENCY_RATIO:g} x LangChain p50",
                                   "ratio_p50": ratios, "met": all(v <= GOAL_LATENCY_RATIO for v in ratios.values())}
    q = peers.get("quality", {})
    if "systems" in q:
        theirs = q["systems"]["langchain ensemble"]["R@5"]
        ours = {n: q["systems"][n]["R@5"] for n in ("ours hybrid-rrf", "ours hybrid-convex")}
        out["recall_vs_langchain"] = {"goal": "ours R@5 >= LangChain ensemble R@5", "langchain": theirs,
                                      "ours": ours, "met": all(v >= theirs for v in ours.values())}
    return out


# --- output ----------------------------------------------------------------------------------------------------
def format_report(res: dict[str, Any]) -> str:
    L: list[str] = []
    m = res["machine"]
    L.append(f"retrieval benchmark: {m['cpus']} CPUs, device {m['device']}, Python {m['python']}; "
             f"model load {res['model_load_s']:.1f} s; {res['config']['queries']} queries per mode, k={K}; "
             f"1-min load average {m['loadavg_start']:.2f} at start, {m['loadavg_end']:.2f} at end; one-query "
             f"embed p50 {m['embed_probe_ms_start']:.1f} ms at start, {m['embed_probe_ms_end']:.1f} ms at end (a check "
             "that no other process competed for the CPUs)")
    L.append("search settings: " + ", ".join(f"{k} {v}" for k, v in res["config"]["settings"].items()))
    for n, s in res["sizes"].items():
        c, cold = s["corpus"], s["cold"]
        L.append("")
        L.append(f"== {int(n):,} chunks ({c['documents']:,} documents, SQLite {c['db_mb']:.0f} MB; generated in "
                 f"{c['generate_s']:.1f} s, written in {c['write_s']:.1f} s)")
        L.append(f"first Rag.open {cold['open_s']:.2f} s; first search (builds FAISS + BM25 from the store, saves "
                 f"them) {cold['first_search_s']:.2f} s; reopen {cold['reopen_s']:.2f} s + first search from saved "
                 f"indexes {cold['reopen_first_search_s']:.2f} s")
        L.append("latency in ms, p50 / p95 (stage timings from SearchResults.timings; 'call' = wall time of "
                 "rag.search)")
        cols = (*STAGES, "call")
        L.append(f"{'mode':<15}" + "".join(f"{c_:>16}" for c_ in cols))
        for mode, r in s["modes"].items():
            cells = [f"{r[c_]['p50']:.2f} / {r[c_]['p95']:.2f}" if c_ in r else "-" for c_ in cols]
            L.append(f"{mode:<15}" + "".join(f"{x:>16}" for x in cells))
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
    p = res["peers"]
    L.append("")
    if "skipped" in p:
        L.append(f"peers: {p['skipped']}")
    else:
        L.append(f"== peers: LangChain EnsembleRetriever (BM25Retriever + FAISS store, weights 0.5/0.5, each k="
                 f"{PEER_K}) vs ours (k={PEER_K}, rerank off), same chunks and MiniLM vectors")
        q = p["quality"]
        if "skipped" in q:
            L.append(f"quality: skipped, {q['skipped']}")
        else:
            L.append(f"quality on data/sample ({p['chunks']} chunks), {q['answerable']} answerable of "
                     f"{q['queries']} labeled queries")
            L.append(f"{'system':<36}" + "".join(f"{x:>9}" for x in q["metrics"]))
            for name, r in q["systems"].items():
                L.append(f"{name:<36}" + "".join(f"{r[x]:>9.3f}" for x in q["metrics"]))
        for label, lat in (("data/sample", p["latency"]), ("synthetic", p["synthetic_latency"])):
            L.append(f"latency on {label} ({lat['chunks']:,} chunks, {lat['queries']} queries): ours p50 "
                     f"{lat['ours']['p50']:.2f} ms / p95 {lat['ours']['p95']:.2f} ms; LangChain p50 "
                     f"{lat['langchain']['p50']:.2f} ms / p95 {lat['langchain']['p95']:.2f} ms; ours/theirs p50 "
                     f"{lat['ratio_p50']:.3f} (LangChain build {lat['langchain_build_s']:.2f} s)")
            L.append(f"  less the query embedding (same model in both): ours p50 "
                     f"{lat['ours_without_embed']['p50']:.2f} ms, LangChain p50 "
                     f"{lat['langchain_without_embed']['p50']:.2f} ms, ratio {lat['ratio_p50_without_embed']:.3f}")
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
    ap.add_argument("--sizes", default="10000,100000", help="collection sizes in chunks, comma-separated")
    ap.add_argument("--queries", type=int, default=200, help="queries per mode and size")
    ap.add_argument("--no-peers", action="store_true", help="skip the LangChain comparison")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)
    try:
        sizes = [int(x.replace("_", "")) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--sizes must be comma-separated integers, not {args.sizes!r}")
    if not sizes or min(sizes) < 10:
        ap.error("--sizes needs at least one size of 10 chunks or more")
    if args.queries < 1:
        ap.error("--queries must be at least 1")
    res = run(sizes=sizes, n_queries=args.queries, peers=not args.no_peers, seed=args.seed, verbose=not args.json)
    if args.json:
        print(json.dumps(_round(res), indent=1))
    else:
        print(format_report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
