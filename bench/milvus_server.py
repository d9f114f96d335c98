"""Milvus search against a Milvus *server* (not milvus-lite) beside FAISS IVF, on the same vectors, in one process.

SYNTHETIC DATA: clustered 384-d unit vectors made by bench/scale.py's `make_vectors` (seed = size); no model runs.
Per size: FAISS IVF (index/vectors.py, `auto_nlist`, as the scale bench builds it) and localrag's own
`MilvusVectorIndex` (index/milvus.py: create the collection with its index, load, upsert in batches of 5,000, flush
by `save_version`) on the server at `--uri`. Then it times `--queries` searches for the top 50 as the search stage
runs them (`ntotal`, counted once, then `dense_leg`):

- "after flush session": at once after the flush (Session consistency), while the server may still be indexing;
- "indexed strong": after `describe_index` reports every row indexed (the wait is reported), as index/milvus.py
  searches now: no consistency level given, so the collection's own, Strong. A Strong search waits for the server's
  next time tick (`proxy.timeTickInterval`, 200 ms by default);
- "indexed session" / "indexed bounded": the same searches sent with consistency_level Session (sees this client's
  own writes) / Bounded (may miss the last `common.gracefulTime`, 5 s, of writes);
- with --compact, "compacted session" / "compacted bounded": after a manual compaction (the upserts leave delete
  records; the server compacts on its own within minutes and re-indexes, which would otherwise overlap the timing),
  once the query node serves only the compacted, indexed segments.

Also recall@10 (FAISS IVF; Milvus indexed strong) against FAISS flat, the insert + flush time, and (with
--server-pid) the server's RSS.

    python -m bench.milvus_server --uri http://127.0.0.1:19530 [--sizes 10000,100000] [--queries 200]
        [--index HNSW|IVF_FLAT|FLAT] [--compact] [--server-pid PID] [--json]

Start a server first, e.g. the embedded Milvus 2.3.5 from PyPI's `milvus` wheel in its own venv (docs/BENCHMARKS.md,
"A Milvus server (embedded `milvus` 2.3.5)").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from localrag.bench.scale import DIM, make_vectors, pct


def _rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 0)


def _wait_indexed(mv: Any, n: int, timeout_s: float) -> float:
    """Seconds until the server reports all n rows indexed (-1 on timeout)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        info = mv.client.describe_index(mv.name, "vector")
        if int(info.get("indexed_rows", 0)) >= n and int(info.get("pending_index_rows", 0)) == 0:
            return time.perf_counter() - t0
        time.sleep(0.5)
    return -1.0


class _AtLevel:
    """The MilvusClient, with every search sent at one consistency level (index/milvus.py sends none, so the
    collection's own level, Strong, applies)."""

    def __init__(self, client: Any, level: str) -> None:
        self._client, self._level = client, level

    def search(self, *a: Any, **kw: Any) -> Any:
        return self._client.search(*a, consistency_level=self._level, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _settle(mv: Any, n: int, timeout_s: float) -> tuple[float, int]:
    """Compact the collection (upsert leaves delete records, and the server's own compaction would otherwise
    rewrite the segments, and re-index them, during the timing), wait for the compaction, for the index of the
    new segments and for the query node to load exactly them. Returns (seconds or -1 on timeout, segments)."""
    c = mv.client
    t0 = time.perf_counter()
    job = c.compact(mv.name)
    while time.perf_counter() - t0 < timeout_s and not str(c.get_compaction_state(job)).lower().endswith("completed"):
        time.sleep(0.5)
    while time.perf_counter() - t0 < timeout_s:
        info = c.describe_index(mv.name, "vector")
        loaded = {s.segment_id for s in c.list_loaded_segments(mv.name)}
        stored = {s.segment_id for s in c.list_persistent_segments(mv.name)}
        if (int(info.get("indexed_rows", 0)) >= n and int(info.get("pending_index_rows", 0)) == 0
                and loaded == stored):
            return time.perf_counter() - t0, len(loaded)
        time.sleep(0.5)
    return -1.0, -1


def _stage(index: Any, qv: np.ndarray, k: int = 50) -> tuple[dict[str, float], list[list[int]]]:
    """p50/p95 of the search stage's use of `index` (`ntotal`, then the dense leg's top k), and each top 10."""
    from localrag.retrieval.search import dense_leg

    times, tops = [], []
    for v in qv:
        t = time.perf_counter()
        ranked: list[int] = dense_leg(index, v, k)[0] if index.ntotal else []
        times.append(time.perf_counter() - t)
        tops.append(ranked[:10])
    return pct(times), tops


def _recall10(tops: list[list[int]], flat: Any, qv: np.ndarray) -> float:
    hits = []
    for got, v in zip(tops, qv, strict=True):
        _, want = flat.search(v, 10)
        hits.append(len(set(got) & set(want[0].tolist())) / 10)
    return round(float(np.mean(hits)), 4)


def run_size(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from localrag.index.milvus import MilvusVectorIndex, client_for
    from localrag.index.vectors import FLAT, FaissVectorIndex, auto_nlist

    res: dict[str, Any] = {"chunks": n, "index": args.index}
    x = make_vectors(n, args.vectors, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    rng = np.random.default_rng(7)
    qv = x[rng.integers(0, n, args.queries)] + 0.03 * rng.standard_normal((args.queries, DIM), dtype=np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)

    flat = FaissVectorIndex.build(DIM, FLAT, ids, lambda part: x[part - 1], use_gpu=False)
    t0 = time.perf_counter()
    ivf = FaissVectorIndex.build(DIM, f"IVF{auto_nlist(n)},Flat", ids, lambda part: x[part - 1],
                                 template="IVF{nlist},Flat", use_gpu=False)
    res["faiss_ivf"] = ivf.description
    res["faiss_ivf_build_s"] = round(time.perf_counter() - t0, 1)
    res["faiss_ivf_stage"], tops = _stage(ivf, qv)
    res["faiss_ivf_recall_at_10"] = _recall10(tops, flat, qv)

    name = f"bench_server_{n}"
    if client_for(args.uri).has_collection(name):
        client_for(args.uri).drop_collection(name)
    t0 = time.perf_counter()
    mv = MilvusVectorIndex.open(args.uri, name, DIM, index_type=args.index)
    res["milvus_open_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    mv.add(ids, x)
    mv.save_version(1)  # flush
    res["milvus_insert_flush_s"] = round(time.perf_counter() - t0, 1)
    res["milvus_count"] = mv.ntotal
    at = {lv: MilvusVectorIndex(_AtLevel(mv.client, lv), mv.name, DIM, mv.index_type)
          for lv in ("Session", "Bounded")}
    for ix in at.values():
        ix._count = mv.ntotal  # counted once, as the product's index keeps it
    res["milvus_after_flush_session_stage"], _ = _stage(at["Session"], qv)
    res["milvus_index_wait_s"] = round(_wait_indexed(mv, n, args.index_timeout), 1)
    res["milvus_indexed_strong_stage"], tops = _stage(mv, qv)  # index/milvus.py as it is (Strong)
    res["milvus_recall_at_10"] = _recall10(tops, flat, qv)
    for lv, ix in at.items():
        res[f"milvus_indexed_{lv.lower()}_stage"], _ = _stage(ix, qv)
    if args.compact:
        settle_s, res["milvus_segments"] = _settle(mv, n, args.index_timeout)
        res["milvus_compact_settle_s"] = round(settle_s, 1)
        for lv, ix in at.items():
            res[f"milvus_compacted_{lv.lower()}_stage"], tops = _stage(ix, qv)
        res["milvus_compacted_recall_at_10"] = _recall10(tops, flat, qv)
    res["faiss_ivf_stage_again"], _ = _stage(ivf, qv)  # same process, after Milvus: for a fair ratio
    f50 = res["faiss_ivf_stage_again"]["p50_ms"]
    for key in ("indexed_strong", "indexed_session", "indexed_bounded", "compacted_session", "compacted_bounded"):
        if f"milvus_{key}_stage" in res:
            res[f"milvus_{key}_vs_ivf_p50"] = round(res[f"milvus_{key}_stage"]["p50_ms"] / f50, 1)
    res["server_rss_mb"] = _rss_mb(args.server_pid)
    if not args.keep:
        mv.drop()
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", required=True, help="Milvus server URI, e.g. http://127.0.0.1:19530")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--index", default="HNSW", choices=["HNSW", "IVF_FLAT", "FLAT"])
    ap.add_argument("--vectors", default="clustered", choices=["clustered", "uniform"])
    ap.add_argument("--index-timeout", type=float, default=900.0, help="seconds to wait for the server's index")
    ap.add_argument("--compact", action="store_true", help="then compact, wait until the query node serves only "
                    "the new, indexed segments, and time Session / Bounded searches again")
    ap.add_argument("--server-pid", type=int, default=0, help="the milvus server process, for its RSS")
    ap.add_argument("--keep", action="store_true", help="keep the Milvus collections (default: drop them)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            r = run_size(n, args, Path(tmp))
            out.append(r)
            if args.json:
                print(json.dumps(r), flush=True)
            else:
                f = r["faiss_ivf_stage_again"]
                line = [f"{n:,} vectors: FAISS {r['faiss_ivf']} p50 {f['p50_ms']} / p95 {f['p95_ms']} ms "
                        f"(recall@10 {r['faiss_ivf_recall_at_10']}); Milvus {args.index}: insert+flush "
                        f"{r['milvus_insert_flush_s']} s, index wait {r['milvus_index_wait_s']} s, "
                        f"recall@10 {r['milvus_recall_at_10']}, server RSS {r['server_rss_mb']} MB"]
                for key in ("after_flush_session", "indexed_strong", "indexed_session", "indexed_bounded",
                            "compacted_session", "compacted_bounded"):
                    m = r.get(f"milvus_{key}_stage")
                    if m is None:
                        continue
                    line.append(f"  Milvus {key.replace('_', ' ')}: p50 {m['p50_ms']} / p95 {m['p95_ms']} ms")
                print("\n".join(line), flush=True)


if __name__ == "__main__":
    main()
