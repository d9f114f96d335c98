"""Benchmarks that drive a `Rag` (or its models) over generated collections and the labeled sets; each module is an
entry point, `python -m localrag.app.bench.<name>` (also `localrag bench ...` and `make bench`):

- ingest: ingestion throughput next to raw SentenceTransformer.encode, re-ingest cost, peak memory
- retrieval: search latency per stage at 10k/100k chunks, bm25s vs rank-bm25, LangChain's EnsembleRetriever as peer
- retrieval_quality: recall/MRR/nDCG of our search modes on the labeled set, the relevance floor
- cache: the semantic answer cache on labeled question pairs (false hits, paraphrase hit rate)
- answer: time to first token, tokens/s, per-stage latency of `ask`, cache hit vs miss, prompt lookup decoding
- judges: the proxy and LLM judges against hand-labelled statements
- scale: 10k / 100k / 1M synthetic chunks: add-one-file cost, latency, IVF recall, bytes per chunk (SCALING.md)

The measures they report that are pure functions of labels and results live in localrag.eval.
"""
