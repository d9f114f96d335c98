"""Benchmarks that drive a `Rag` (or its models) over generated collections and the labeled sets; each module is an
entry point, `python -m bench.<name>` run from the repository root (also `localrag bench ...` and `make bench`).

Why here and not in the package: the benchmarks need the labelled sets in data/eval and the corpora (data/sample,
../shared/corpora, the python3-doc pages), which exist only in a source checkout, so they live beside the package,
like bm25s's `benchmarks/`, as a plain unpackaged `bench` package importable when the checkout is on sys.path. The
wheel carries only the product; `localrag bench ...` finds this folder next to the `localrag` package directory and
says so when it is absent (installed from a wheel). Benchmarks import the product as `localrag.*`, never the other
way round.

The modules:

- ingest: ingestion throughput next to raw SentenceTransformer.encode, re-ingest cost, peak memory
- corpora: the labelled corpora (sample, articles, Python docs and Python FAQ/HOWTOs prepared from python3-doc) and
  their question sets
- retrieval: ours beside txtai and LangChain on every labelled corpus (quality per split, latency ratios), the
  per-stage split of a query at 10k chunks
- retrieval_quality: recall/MRR/nDCG of our search modes per corpus and split, the relevance floor
- fusion_study: fusion settings and chunk sizes over the dev halves of every corpus (what the default is chosen from)
- fusion_loco: leave-one-corpus-out on the dev halves: which way of choosing carries over to an unseen corpus
- cache: the semantic answer cache on labeled question pairs (false hits, paraphrase hit rate)
- answer: time to first token, tokens/s, per-stage latency of `ask`, cache hit vs miss, prompt lookup decoding
- judges: the proxy and LLM judges against hand-labelled statements
- answer_modes: extractive vs generative on the QA sets' dev/test halves (grounded, key facts, abstention);
  chooser: can the bundled model pick among candidate sentences
- store: SQLite vs PostgreSQL (insert, catch-up reads, per-search round trips)
- rdf_parse: pyoxigraph vs rdflib
- scale: 10k / 100k / 1M synthetic chunks: add-one-file cost, latency, IVF recall, bytes per chunk (SCALING.md)

The measures they report that are pure functions of labels and results live in localrag.eval.
"""
