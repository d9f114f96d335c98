"""Scale benchmark: what one machine does with 10k / 100k / 1M chunks (issue 16; docs/SCALING.md).

SYNTHETIC DATA: chunk texts are ~150 words drawn from a Zipf-distributed 50k-word vocabulary (speed and memory
only, no relevance); vectors are 384-d unit vectors, clustered (random centres + Gaussian noise, cosine to their
centre ~0.6, like sentence embeddings) or uniformly random (`--vectors uniform`, the worst case for IVF recall).
No model runs. Per size it reports:

- add one file (20 chunks) to the collection: BM25 (segmented, incremental: index/lexical.py) and vectors (FAISS
  flat or IVF: index/vectors.py), each with its save; beside it the old way, a full BM25 rebuild from every chunk
  text (tokenize + bm25s index), measured up to --rebuild-max chunks;
- search latency p50/p95: dense flat, dense IVF, BM25, hybrid (IVF + BM25 legs, 50 candidates each, and exact
  scores of their union, as retrieval/search.py runs them);
- recall@10 of IVF (nprobe = nlist/16) against flat, and with --milvus of Milvus HNSW (milvus-lite);
- memory per chunk: text (UTF-8), fp16 vector as stored, the chunks row in SQLite (same columns and indexes as
  index/store.py) and, with --pg, in PostgreSQL (pgserver); BM25; flat and IVF indexes; and the process RSS.

    python -m bench.scale [--chunks 1000000] [--sizes 10000,100000] [--smoke] [--json] [--only lexical|vectors]

`--only lexical`: BM25 alone (build, add one file, the lexical leg by posting lists against the dense scoring of
every chunk it replaced, both in this process); `--only vectors`: FAISS flat / IVF and Milvus HNSW (milvus-lite)
alone, each searched as the search stage does (its `ntotal`, then the dense leg), Milvus also with the per-search
count(*) it used to run.
    (or: localrag bench scale ...)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
WORDS_PER_CHUNK = 150
VOCAB = 50_000
FILE_CHUNKS = 20


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def make_texts(n: int, seed: int) -> list[str]:
    """n synthetic chunk texts (Zipf word use over a fixed vocabulary, lengths 100-200 words)."""
    rng = np.random.default_rng(seed)
    words = np.array([f"{w}{i}" for i, w in zip(range(VOCAB), ["tide", "kelp", "lamp", "quay", "gull"] * VOCAB,
                                                  strict=False)])
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
    p /= p.sum()
    lens = rng.integers(100, 201, n)
    flat = rng.choice(VOCAB, size=int(lens.sum()), p=p)
    out, pos = [], 0
    for k in lens:
        out.append(" ".join(words[flat[pos : pos + k]]))
        pos += k
    return out


def make_vectors(n: int, kind: str, seed: int, centres: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n, DIM), dtype=np.float32)
    else:
        c = rng.standard_normal((centres, DIM), dtype=np.float32)
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        x = np.empty((n, DIM), np.float32)
        for s in range(0, n, 100_000):
            m = min(n, s + 100_000) - s
            x[s : s + m] = c[rng.integers(0, centres, m)] + 0.066 * rng.standard_normal((m, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def pct(times: list[float]) -> dict[str, float]:
    a = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def store_bytes(texts: list[str], vecs16: np.ndarray, folder: Path, pg: bool) -> dict[str, float]:
    """Bytes per chunk row in SQLite (and PostgreSQL) for the chunks table's columns and indexes."""
    ddl = ("CREATE TABLE chunks (id INTEGER PRIMARY KEY, collection_id INTEGER, document_id INTEGER, ordinal INTEGER, "
           "text TEXT, page INTEGER, kg_uri TEXT, label TEXT, n_tokens INTEGER, section TEXT, text_sha256 "
           "VARCHAR(64), embedding {blob})")
    idx = ["CREATE INDEX ix_c_coll ON chunks (collection_id)", "CREATE INDEX ix_c_doc ON chunks (document_id)"]
    import hashlib

    rows = [(i + 1, 1, i // 50 + 1, i % 50, t, None, None, None, 200, "Report › Section",
             hashlib.sha256(t.encode()).hexdigest(), vecs16[i].tobytes()) for i, t in enumerate(texts)]
    out: dict[str, float] = {}
    path = folder / "chunks.sqlite"
    con = sqlite3.connect(path)
    con.execute(ddl.format(blob="BLOB"))
    for q in idx:
        con.execute(q)
    con.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.execute("VACUUM")
    con.close()
    out["sqlite_bytes_per_chunk"] = round(path.stat().st_size / len(texts), 1)
    if pg:
        import pgserver
        import psycopg

        srv = pgserver.get_server(folder / "pg")
        with psycopg.connect(srv.get_uri(), autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS chunks")
            c.execute(ddl.format(blob="BYTEA").replace("INTEGER PRIMARY KEY", "BIGINT PRIMARY KEY"))
            for q in idx:
                c.execute(q)
            with c.cursor() as cur, cur.copy("COPY chunks FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            c.execute("VACUUM ANALYZE chunks")
            size = c.execute("SELECT pg_total_relation_size('chunks')").fetchone()[0]
            c.execute("DROP TABLE chunks")
        out["postgres_bytes_per_chunk"] = round(size / len(texts), 1)
    return out


def bm25_part(n: int, ids: np.ndarray, texts: list[str], folder: Path, rebuild_max: int) -> tuple[Any, dict]:
    """BM25: build the base (segments of 100k, as ingests would), then add one file; the old full bm25s rebuild
    beside it up to `rebuild_max` chunks. Returns the index and its figures."""
    import bm25s

    from localrag.index.lexical import BM25Index, tokenize

    base_t, file_t = texts[:n], texts[n:]
    res: dict[str, Any] = {}
    lex = BM25Index()
    t0 = time.perf_counter()
    for s in range(0, n, 100_000):
        lex.add(ids[s : min(n, s + 100_000)], base_t[s : min(n, s + 100_000)])
    res["bm25_build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    lex.save(folder / "bm25", {"corpus_version": 1})
    res["bm25_save_s"] = round(time.perf_counter() - t0, 2)  # with the long lists ordered best-first
    t0 = time.perf_counter()
    lex.add(ids[n:], file_t)
    lex.save(folder / "bm25", {"corpus_version": 2})
    res["add_file_bm25_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    res["bm25_bytes_per_chunk"] = round(lex.memory_bytes() / len(lex), 1)
    res["bm25_disk_bytes_per_chunk"] = round(
        sum(p.stat().st_size for p in (folder / "bm25").rglob("*") if p.is_file()) / len(lex), 1)
    if n <= rebuild_max:  # the old way: every text tokenized and indexed again by bm25s
        t0 = time.perf_counter()
        toks = [tokenize(t) or [""] for t in texts]
        ref = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        ref.index(toks, show_progress=False)
        res["rebuild_bm25s_s"] = round(time.perf_counter() - t0, 2)
        del toks, ref
    return lex, res


def vector_part(n: int, ids: np.ndarray, x: np.ndarray, folder: Path) -> tuple[Any, Any, dict]:
    """Vectors: flat and IVF over the base, then add one file to each. Returns both indexes and their figures."""
    from localrag.index.vectors import FLAT, FaissVectorIndex, auto_nlist

    res: dict[str, Any] = {}
    base_ids = ids[:n]
    t0 = time.perf_counter()
    flat = FaissVectorIndex.build(DIM, FLAT, base_ids, lambda part: x[part - 1], use_gpu=False)
    res["flat_build_s"] = round(time.perf_counter() - t0, 2)
    nlist = auto_nlist(n)
    t0 = time.perf_counter()
    ivf = FaissVectorIndex.build(DIM, f"IVF{nlist},Flat", base_ids, lambda part: x[part - 1],
                                 template="IVF{nlist},Flat", use_gpu=False)
    res["ivf_build_s"] = round(time.perf_counter() - t0, 2)
    res["ivf"] = ivf.description
    for name, vi in (("flat", flat), ("ivf", ivf)):
        vi.save(folder / f"{name}.faiss", {"corpus_version": 1})
        t0 = time.perf_counter()
        vi.add(ids[n:], x[n:])
        vi.save(folder / f"{name}.faiss", {"corpus_version": 2})
        res[f"add_file_{name}_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        res[f"{name}_bytes_per_chunk"] = round(vi.memory_bytes() / vi.ntotal, 1)
    return flat, ivf, res


def query_part(n: int, x: np.ndarray, texts: list[str], flat: Any, ivf: Any, lex: Any,
               queries: int) -> tuple[np.ndarray, dict]:
    """Queries (a vector near a chunk's, 3 words of that chunk): p50/p95 of each search mode, IVF recall@10 against
    flat. Returns the query vectors and the figures."""
    from localrag.retrieval.search import Candidates, dense_leg, lexical_leg, score_candidates

    rng = np.random.default_rng(7)
    picks = rng.integers(0, n, queries)
    qv = x[picks] + 0.03 * rng.standard_normal((len(picks), DIM), dtype=np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    qt = [" ".join(rng.choice(texts[p].split(), 3)) for p in picks]
    lat: dict[str, list[float]] = {"dense_flat": [], "dense_ivf": [], "bm25": [], "hybrid": []}
    hits = []
    for v, q in zip(qv, qt, strict=True):
        t = time.perf_counter()
        _, e = flat.search(v, 10)
        lat["dense_flat"].append(time.perf_counter() - t)
        t = time.perf_counter()
        _, a = ivf.search(v, 10)
        lat["dense_ivf"].append(time.perf_counter() - t)
        hits.append(len(set(e[0].tolist()) & set(a[0].tolist())) / 10)
        t = time.perf_counter()
        lexical_leg(lex, q, 10)
        lat["bm25"].append(time.perf_counter() - t)
        t = time.perf_counter()
        c = Candidates(query_vector=v)
        c.dense, c.dense_scores = dense_leg(ivf, v, 50)
        c.lexical, c.lexical_all = lexical_leg(lex, q, 50)
        score_candidates(c, q, ivf, lex)
        lat["hybrid"].append(time.perf_counter() - t)
    return qv, {"latency": {k: pct(v) for k, v in lat.items()}, "ivf_recall_at_10": round(float(np.mean(hits)), 4)}


def lexical_queries(n: int, texts: list[str], lex: Any, queries: int) -> dict[str, Any]:
    """The lexical leg as retrieval/search.py runs it (top 50 by posting lists, then the BM25 of 100 candidates),
    and the way it replaced (every chunk scored, top 50 of that array, candidates looked up in it): p50/p95 of
    each over the same queries (3 words of a chunk), in this process. The posting-list path is timed on a first
    pass over the queries (a long list saved without its best-first order is ordered on first use) and on a
    second."""
    from localrag.retrieval.search import lexical_leg

    rng = np.random.default_rng(7)
    picks = rng.integers(0, n, queries)
    qt = [" ".join(rng.choice(texts[p].split(), 3)) for p in picks]
    others = rng.integers(1, n + 1, (queries, 50))  # stand-ins for the dense leg's candidates
    lat: dict[str, list[float]] = {"bm25_postings_first": [], "bm25_postings": [], "bm25_dense_all": []}
    for first in (True, False):  # the first pass orders the long lists it reads (kept for later queries)
        for q, extra in zip(qt, others, strict=True):
            t = time.perf_counter()
            top, scores = lexical_leg(lex, q, 50)
            scores.of(np.concatenate([np.array(top, np.int64), extra]))
            lat["bm25_postings_first" if first else "bm25_postings"].append(time.perf_counter() - t)
    for q, extra in zip(qt, others, strict=True):
        t = time.perf_counter()
        every = lex.scores(q)
        _, old_top = lex.search(q, 50, scores=every)
        every[np.maximum(lex.positions(np.concatenate([old_top, extra])), 0)]
        lat["bm25_dense_all"].append(time.perf_counter() - t)
    out = {k: pct(v) for k, v in lat.items()}
    return {"latency": out, "bm25_postings_vs_dense_p50": round(out["bm25_postings"]["p50_ms"]
                                                                 / out["bm25_dense_all"]["p50_ms"], 3)}


def run_lexical(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`--only lexical`: BM25 of n synthetic chunks (plus one file), then its queries."""
    res: dict[str, Any] = {"chunks": n}
    t0 = time.perf_counter()
    texts = make_texts(n + FILE_CHUNKS, seed=n)
    ids = np.arange(1, n + FILE_CHUNKS + 1, dtype=np.int64)
    res["generate_s"] = round(time.perf_counter() - t0, 1)
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    lex, bm25_res = bm25_part(n, ids, texts, folder, args.rebuild_max)
    res.update(bm25_res)
    from localrag.index.lexical import BM25Index

    t0 = time.perf_counter()
    lex, _ = BM25Index.load(folder / "bm25")  # queried as another process would: the saved files, memory-mapped
    res["bm25_load_s"] = round(time.perf_counter() - t0, 3)
    res.update(lexical_queries(n, texts, lex, args.queries))
    res["rss_mb"] = round(rss_mb(), 0)
    return res


def run_vectors(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """`--only vectors`: FAISS flat and IVF and Milvus HNSW over n synthetic vectors, searched as the search
    stage searches (`ntotal`, then the dense leg's top 50)."""
    from localrag.retrieval.search import dense_leg

    res: dict[str, Any] = {"chunks": n}
    x = make_vectors(n + FILE_CHUNKS, args.vectors, seed=n)
    ids = np.arange(1, n + FILE_CHUNKS + 1, dtype=np.int64)
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    flat, ivf, vec_res = vector_part(n, ids, x, folder)
    res.update(vec_res)
    rng = np.random.default_rng(7)
    qv = x[rng.integers(0, n, args.queries)] + 0.03 * rng.standard_normal((args.queries, DIM), dtype=np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    times = []
    for v in qv:
        t = time.perf_counter()
        if ivf.ntotal:
            dense_leg(ivf, v, 50)
        times.append(time.perf_counter() - t)
    res["ivf_stage_latency"] = pct(times)
    res.update(milvus_hnsw(x[:n], ids[:n], qv, flat, folder))
    res["milvus_vs_ivf_p50"] = round(res["milvus_stage_latency"]["p50_ms"] / res["ivf_stage_latency"]["p50_ms"], 2)
    return res


def run_size(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One collection size: generate n chunks plus one file's worth, then BM25, vectors, queries, Milvus and the
    stores' bytes per chunk (the last two as `args` asks)."""
    if args.only == "lexical":
        return run_lexical(n, args, work)
    if args.only == "vectors":
        return run_vectors(n, args, work)
    res: dict[str, Any] = {"chunks": n}
    t0 = time.perf_counter()
    texts = make_texts(n + FILE_CHUNKS, seed=n)
    x = make_vectors(n + FILE_CHUNKS, args.vectors, seed=n)
    ids = np.arange(1, n + FILE_CHUNKS + 1, dtype=np.int64)
    res["generate_s"] = round(time.perf_counter() - t0, 1)
    base_t = texts[:n]
    res["text_bytes_per_chunk"] = round(sum(len(t.encode()) for t in base_t[:20000]) / min(n, 20000), 1)
    res["fp16_vector_bytes_per_chunk"] = DIM * 2
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)

    lex, bm25_res = bm25_part(n, ids, texts, folder, args.rebuild_max)
    res.update(bm25_res)
    flat, ivf, vec_res = vector_part(n, ids, x, folder)
    res.update(vec_res)
    res["add_file_total_ms"] = round(res["add_file_bm25_ms"] + res["add_file_ivf_ms" if n >= args.ann_from
                                                                    else "add_file_flat_ms"], 1)
    qv, query_res = query_part(n, x, texts, flat, ivf, lex, args.queries)
    res.update(query_res)
    if args.milvus:
        res.update(milvus_hnsw(x[:n], ids[:n], qv, flat, folder))
    res["rss_mb"] = round(rss_mb(), 0)
    if n <= args.store_max:
        v16 = x[:n].astype(np.float16)
        res.update(store_bytes(base_t, v16, folder, args.pg))
    return res


def milvus_hnsw(x: np.ndarray, ids: np.ndarray, qv: np.ndarray, flat: Any, folder: Path) -> dict[str, Any]:
    """Milvus HNSW (milvus-lite, index/milvus.py defaults) over the same vectors: insert time, p50/p95 of one
    query, of the search stage's use of it (`ntotal`, then the dense leg's top 50) and of that with the count(*)
    query it ran per search before the count was kept (`milvus_stage_count_latency`), recall@10 against FAISS
    flat."""
    from localrag.index.milvus import MilvusVectorIndex
    from localrag.retrieval.search import dense_leg

    t0 = time.perf_counter()
    mv = MilvusVectorIndex.open(str(folder / "milvus.db"), "bench", DIM, index_type="HNSW")
    mv.add(ids, x)
    mv.save_version(1)  # flush
    insert_s = time.perf_counter() - t0
    times, hits = [], []
    for v in qv:
        t = time.perf_counter()
        _, got = mv.search(v, 10)
        times.append(time.perf_counter() - t)
        _, want = flat.search(v, 10)
        hits.append(len(set(got[0].tolist()) & set(want[0].tolist())) / 10)
    stage, counted = [], []
    for v in qv:
        t = time.perf_counter()
        if mv.ntotal:
            dense_leg(mv, v, 50)
        stage.append(time.perf_counter() - t)
        t = time.perf_counter()
        if int(mv.client.query(mv.name, filter="", output_fields=["count(*)"])[0]["count(*)"]):
            dense_leg(mv, v, 50)
        counted.append(time.perf_counter() - t)
    mv.drop()
    return {"milvus_insert_s": round(insert_s, 1), "milvus_hnsw_latency": pct(times),
            "milvus_stage_latency": pct(stage), "milvus_stage_count_latency": pct(counted),
            "milvus_hnsw_recall_at_10": round(float(np.mean(hits)), 4)}


def docstring_paragraphs(n: int) -> list[str]:
    """Up to n distinct English paragraphs (20-200 words) from the docstrings of the installed packages, in a fixed
    order: real prose to embed when no corpus of that size ships with the project."""
    import ast
    import site
    import textwrap

    roots = sorted(Path(p) for p in site.getsitepackages() if Path(p).is_dir())
    seen: set[str] = set()
    out: list[str] = []
    for root in roots:
        for f in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(f.read_text(encoding="utf-8"))
            except Exception:
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef | ast.Module):
                    continue
                doc = ast.get_docstring(node)
                for para in textwrap.dedent(doc or "").split("\n\n"):
                    words = para.split()
                    if 20 <= len(words) <= 200 and sum(w.isalpha() for w in words) > 0.7 * len(words):
                        text = " ".join(words)
                        if text not in seen:
                            seen.add(text)
                            out.append(text)
                            if len(out) >= n:
                                return out
    return out


def real_recall(n: int, queries: int) -> dict[str, Any]:
    """Recall@10 of IVF against flat on real MiniLM embeddings of n docstring paragraphs, per nprobe; the queries
    are other paragraphs (held out of the index)."""
    from localrag.index.embedder import Embedder
    from localrag.index.vectors import FLAT, FaissVectorIndex, auto_nlist

    texts = docstring_paragraphs(n + queries)
    t0 = time.perf_counter()
    emb = Embedder().encode(texts).astype(np.float32)
    embed_s = time.perf_counter() - t0
    base, q = emb[: len(texts) - queries], emb[len(texts) - queries :]
    ids = np.arange(len(base), dtype=np.int64)
    flat = FaissVectorIndex.build(DIM, FLAT, ids, lambda p: base[p], use_gpu=False)
    nlist = auto_nlist(len(base))
    ivf = FaissVectorIndex.build(DIM, f"IVF{nlist},Flat", ids, lambda p: base[p], use_gpu=False)
    _, e = flat.search(q, 10)
    out: dict[str, Any] = {"paragraphs": len(base), "queries": len(q), "nlist": nlist, "embed_s": round(embed_s, 1),
                           "recall_at_10": {}}
    for nprobe in sorted({8, max(8, nlist // 16), nlist // 8, nlist // 4}):
        ivf.nprobe_setting = nprobe
        import faiss

        faiss.extract_index_ivf(ivf.cpu).nprobe = nprobe
        _, a = ivf.search(q, 10)
        out["recall_at_10"][nprobe] = round(float(np.mean(
            [len(set(x) & set(y)) / 10 for x, y in zip(a.tolist(), e.tolist(), strict=True)])), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=1_000_000, help="largest size (sizes: 10k, 100k, ... up to it)")
    ap.add_argument("--sizes", help="explicit sizes, comma-separated (overrides --chunks)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--vectors", choices=["clustered", "uniform"], default="clustered")
    ap.add_argument("--rebuild-max", type=int, default=100_000, help="measure the full BM25 rebuild up to this")
    ap.add_argument("--store-max", type=int, default=100_000, help="measure store bytes per chunk up to this")
    ap.add_argument("--ann-from", type=int, default=100_000, help="size from which the add-one-file total uses IVF")
    ap.add_argument("--pg", action="store_true", help="also measure PostgreSQL bytes per chunk (pgserver)")
    ap.add_argument("--milvus", action="store_true", help="also Milvus HNSW (milvus-lite): insert time, latency, "
                    "recall@10 against FAISS flat")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (1k, 2k), 10 queries: seconds")
    ap.add_argument("--real", type=int, default=0, help="also: IVF recall@10 per nprobe on real MiniLM embeddings "
                    "of this many docstring paragraphs of the installed packages (embeds them: minutes)")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--only", choices=["lexical", "vectors"], help="measure BM25 alone, or FAISS and Milvus alone")
    args = ap.parse_args(argv)
    if args.real:
        rr = real_recall(args.real, 200)
        print(json.dumps({"real_embeddings": rr}) if args.json else
              f"real MiniLM embeddings of {rr['paragraphs']:,} docstring paragraphs, IVF{rr['nlist']}: recall@10 vs "
              f"flat per nprobe {rr['recall_at_10']} ({rr['queries']} held-out paragraphs as queries)")
    if args.smoke:
        sizes, args.queries = [1000, 2000], 10
    elif args.sizes:
        sizes = [int(s) for s in args.sizes.split(",") if int(s) > 0]
    else:
        sizes = [s for s in (10_000, 100_000, 1_000_000, 10_000_000) if s <= args.chunks] or [args.chunks]
    import faiss

    threads = faiss.omp_get_max_threads()
    results = []
    with tempfile.TemporaryDirectory(prefix="localrag-scale-") as tmp:
        for n in sizes:
            r = run_size(n, args, Path(tmp))
            results.append(r)
            if not args.json:
                print(json.dumps(r, indent=1)) if args.only else print_size(r)
            else:
                print(json.dumps(r), file=sys.stderr, flush=True)  # each size as it finishes
    out = {"synthetic": f"texts: Zipf words; vectors: {args.vectors} random unit vectors (no model)",
           "cpus": os.cpu_count(), "faiss_threads": threads, "sizes": results}
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"\n(synthetic data: {out['synthetic']}; {out['cpus']} CPUs, faiss threads {threads})")
    return 0


def print_size(r: dict[str, Any]) -> None:
    n = r["chunks"]
    print(f"\n== {n:,} chunks (synthetic) ==")
    rb = f"{r['rebuild_bm25s_s']:.2f} s" if "rebuild_bm25s_s" in r else "not measured (> --rebuild-max)"
    print(f"add one file ({FILE_CHUNKS} chunks): BM25 {r['add_file_bm25_ms']} ms, flat {r['add_file_flat_ms']} ms, "
          f"IVF {r['add_file_ivf_ms']} ms (each with its save); old full BM25 rebuild: {rb}")
    for k, v in r["latency"].items():
        print(f"  search {k:<11} p50 {v['p50_ms']:>8.2f} ms   p95 {v['p95_ms']:>8.2f} ms")
    print(f"recall@10 {r['ivf']} vs flat: {r['ivf_recall_at_10']:.3f}")
    if "milvus_hnsw_recall_at_10" in r:
        m = r["milvus_hnsw_latency"]
        print(f"Milvus HNSW (milvus-lite): recall@10 vs flat {r['milvus_hnsw_recall_at_10']:.3f}, search p50 "
              f"{m['p50_ms']:.2f} ms p95 {m['p95_ms']:.2f} ms, insert + flush {r['milvus_insert_s']} s")
    mem = ", ".join(f"{k.replace('_bytes_per_chunk', '')} {r[k]:.0f}" for k in r if k.endswith("bytes_per_chunk"))
    print(f"bytes per chunk: {mem}")
    print(f"RSS {r['rss_mb']:.0f} MB; build: BM25 {r['bm25_build_s']} s, flat {r['flat_build_s']} s, "
          f"IVF {r['ivf_build_s']} s; data generation {r['generate_s']} s")


if __name__ == "__main__":
    sys.exit(main())
