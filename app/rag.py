"""The Rag facade: the one Python API that the CLI, the UI and users call."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localrag.app.answering import Answer
from localrag.app.ask import AskEvent, AskOptions, answer_events, as_messages
from localrag.app.config import Settings, load_settings
from localrag.app.tune import CollectionModel, TuneError, TuneOptions
from localrag.index.embedder import Embedder, resolve_model
from localrag.index.indexes import CollectionIndexes, VectorSettings
from localrag.index.store import CollectionRow, Store, StoreError
from localrag.index.vectors import faiss_threads
from localrag.ingest.job import CollectionBusy, CollectionLock, IngestJob, IngestLocked, IngestReport, ProgressFn
from localrag.retrieval.rerank import Reranker, RerankerError
from localrag.retrieval.search import Searcher, SearchError, SearchParams, StaleIndex
from localrag.retrieval.types import Filters, Hit, Neighbour, SearchResults

if TYPE_CHECKING:
    from localrag.app.cache import SemanticCache
    from localrag.app.conversations import Conversations
    from localrag.app.llm import LlamaCppLLM, OpenAICompatLLM
    from localrag.eval.scoring import ProxyScorer

__all__ = ["Filters", "Hit", "ModelMismatch", "Neighbour", "Rag", "RagError", "SearchResults"]

log = logging.getLogger(__name__)


MAX_COLLECTION_NAME = 200  # collections.name is VARCHAR(200): PostgreSQL enforces it (SQLite does not)


class RagError(RuntimeError):
    """A problem the user can fix; the message says how."""


class ModelMismatch(RagError):
    pass


class Rag:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.storage.database_url or f"sqlite:///{self.data_dir / 'localrag.sqlite'}"
        try:
            self.store = Store(url)
        except StoreError as exc:
            raise RagError(str(exc)) from None
        self._embedder: Embedder | None = embedder  # share one across Rag objects to load the model once
        self._indexes: dict[str, CollectionIndexes] = {}
        self._indexes_lock = threading.Lock()  # guards _indexes and _loading; never held across I/O
        self._loading: dict[str, threading.Lock] = {}  # per collection: one thread (re)loads its indexes at a time
        self._opened: set[str] = set()  # collections loaded from disk once in this Rag (later loads: in memory only)
        # collections looked up for search, checked against the configured model once (their id, model and
        # dimension never change); ingest and remove drop the entry. Saves an ORM query per search.
        self._search_colls: dict[str, CollectionRow] = {}
        self._reranker: Reranker | None = None
        self._llm: LlamaCppLLM | OpenAICompatLLM | None = None
        self._llm_lock = threading.Lock()
        self._verifier: LlamaCppLLM | OpenAICompatLLM | None = None  # answer.verify_model, when it is its own model
        self._verifier_owned = False  # loaded here (closed with the Rag), not given by set_verifier
        self._cache: SemanticCache | None = None
        self._scorer: ProxyScorer | None = None
        # per collection id: the model its queries and ingests use (app/tune), as of a corpus_version
        self._models: dict[int, tuple[int, CollectionModel]] = {}

    @classmethod
    def open(
        cls, data_dir: str | Path | None = None, config_file: Path | None = None, embedder: Embedder | None = None,
        **overrides: Any,
    ) -> Rag:
        """Open (or create) a data directory. Keyword overrides win over localrag.toml and LOCALRAG_* variables."""
        if data_dir is not None:
            overrides["data_dir"] = Path(data_dir)
        return cls(load_settings(config_file, **overrides), embedder=embedder)

    def close(self) -> None:
        if self._verifier_owned and self._verifier is not None:
            self._verifier.close()
        self._verifier, self._verifier_owned = None, False
        if self._llm is not None:
            self._llm.close()
            self._llm = None
        self.store.engine.dispose()

    def __enter__(self) -> Rag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- parts ---------------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = Embedder(s.embedding_model, device=s.device, batch_size=s.ingest.embed_batch_size,
                                      threads=s.threads)
        return self._embedder

    def _folder(self, coll: CollectionRow) -> Path:
        return self.data_dir / "collections" / f"{coll.id:04d}"

    def _collection(self, name: str, create: bool) -> CollectionRow:
        coll = self.store.collection(name)
        model_id, _ = resolve_model(self.settings.embedding_model)
        if coll is None:
            if not create:
                known = ", ".join(c.name for c in self.store.collections()) or "none yet"
                raise RagError(f"no collection named {name!r} (collections: {known}); ingest something into it first")
            if not name.strip() or len(name) > MAX_COLLECTION_NAME or "\x00" in name:
                raise RagError(f"a collection name must be 1 to {MAX_COLLECTION_NAME} characters (no NUL); got "
                               f"{len(name)}: choose a shorter --collection")
            ing = self.settings.ingest
            return self.store.add_collection(name, model_id, self.embedder.dim, ing.chunk_tokens, ing.chunk_overlap)
        if coll.embedding_model != model_id:
            raise ModelMismatch(
                f"collection {name!r} was built with the embedding model {coll.embedding_model} "
                f"({coll.embedding_dim}-d), but the configured model is {model_id}. Vectors from two models cannot "
                "be compared: configure the collection's model, or use another --collection."
            )
        return coll

    def _model(self, coll: CollectionRow) -> CollectionModel:
        """The embedder a collection uses (a tuned one after `tune`, else the base: `embedder` None) and the folder
        of its vector files, checked once per corpus_version (a tune's switch and undo bump it)."""
        from localrag.app.tune import collection_model

        version = self.store.corpus_version(coll.id)
        cached = self._models.get(coll.id)
        if cached is not None and cached[0] == version:
            return cached[1]
        folder = self._folder(coll)
        try:
            m = collection_model(self.store, coll, folder, self.embedder,
                                 lambda: CollectionLock(folder, self.store, coll.id), cached[1] if cached else None)
        except IngestLocked:
            raise RagError(f"collection {coll.name!r}: its tuned embedder is unusable and an ingest is running; "
                           "try again when it ends") from None
        if m.warning:
            import warnings

            warnings.warn(m.warning, RuntimeWarning, stacklevel=3)
        self._models[coll.id] = (self.store.corpus_version(coll.id), m)
        return m

    def collection_embedder(self, collection: str = "default") -> Embedder:
        """The embedder a collection's queries use: its tuned model after `tune`, else the configured one."""
        coll = self._collection(collection, create=False)
        return self._model(coll).embedder or self.embedder

    def _new_indexes(self, coll: CollectionRow, folder: Path | None = None) -> CollectionIndexes:
        return CollectionIndexes(
            self.store, coll.id, coll.embedding_dim, folder or self._model(coll).folder,
            self.settings.storage.lexical_backend,
            use_gpu=self.settings.storage.use_gpu, vector_settings=self._vector_settings(coll),
        )

    def _vector_settings(self, coll: CollectionRow) -> VectorSettings:
        st = self.settings.storage
        return VectorSettings(
            backend=st.vector_backend, faiss_index=st.faiss_index, ann_threshold=st.faiss_ann_threshold,
            nprobe=st.faiss_nprobe, milvus_uri=st.milvus_uri or str(self.data_dir / "milvus.db"),
            milvus_index=st.milvus_index, milvus_collection=f"{st.milvus_collection_prefix}_{coll.id:04d}",
        )

    def _open_indexes(self, coll: CollectionRow) -> CollectionIndexes:
        """Indexes of a collection, in step with the store's corpus_version at the call, except while another
        thread is already catching up with a newer commit: then the snapshot it replaces (one consistent version,
        never a mix) comes back at once, rather than every search waiting for the reload (issue 25; searches keep
        the object they started with). No lock is held across the reload but this collection's own load lock, which
        only the first open of the collection waits for."""
        version = self.store.corpus_version(coll.id)
        with self._indexes_lock:
            cached = self._indexes.get(coll.name)
            if cached is not None and cached.version >= version:
                return cached
            loading = self._loading.setdefault(coll.name, threading.Lock())
        if cached is not None and not loading.acquire(blocking=False):
            return cached  # another thread is catching up: search the snapshot it replaces
        if cached is None:
            loading.acquire()  # a first open (or after StaleIndex): wait for the thread loading it, if any
        try:
            with self._indexes_lock:
                current = self._indexes.get(coll.name)
            if current is not None and current.version >= self.store.corpus_version(coll.id):
                return current  # another thread loaded it while this one waited
            idx = self._load_indexes(coll, first=coll.name not in self._opened)
            with self._indexes_lock:
                self._opened.add(coll.name)
                current = self._indexes.get(coll.name)
                if current is None or current.version < idx.version:  # never back in time (an ingest here)
                    self._indexes[coll.name] = current = idx
                return current
        finally:
            loading.release()

    def _load_indexes(self, coll: CollectionRow, first: bool) -> CollectionIndexes:
        """Load a collection's indexes and catch up with the store. The first load in this process also repairs
        the files on disk when no ingest holds the lock; later ones follow another process's commits, which that
        process saves itself, in memory only (taking the ingest lock for them made that process's next ingest
        fail with IngestLocked)."""
        idx = self._new_indexes(coll)
        if not first:
            idx.open(persist=False)
            return idx
        try:
            with CollectionLock(self._folder(coll), self.store, coll.id):
                idx.open(persist=True)
        except IngestLocked:
            idx.open(persist=False)  # an ingest is running: catch up in memory, write nothing
        return idx

    def _search_collection(self, name: str) -> CollectionRow:
        """The collection a search reads (cached; `_collection` checks it the first time)."""
        coll = self._search_colls.get(name)
        if coll is None:
            coll = self._collection(name, create=False)
            self._search_colls[name] = coll
        return coll

    # --- ingestion -----------------------------------------------------------------------------------------
    def ingest(
        self, paths: Sequence[str | Path], collection: str = "default", progress: ProgressFn | None = None,
        sync: bool = False,
    ) -> IngestReport:
        """Ingest files and folders. With `sync=True`, documents under the given folders whose files are gone are
        removed too. Unchanged files are skipped; changed ones replace their old chunks."""
        coll = self._collection(collection, create=True)
        folder = self._folder(coll)
        self._model(coll)  # before the lock: a tuned model found unusable is reverted under it
        with CollectionLock(folder, self.store, coll.id), faiss_threads(self.settings.threads):
            idx = self._new_indexes(coll)
            repair = idx.open(persist=True)
            job = self._job(coll, idx, progress)
            p = [Path(x) for x in paths]
            report = job.ingest(p, sync_dirs=[x for x in p if x.is_dir()] if sync else None,
                                command="sync" if sync else "ingest")
            self._indexes[coll.name] = idx
            self._opened.add(coll.name)  # loaded and repaired on disk, under the lock
            self._search_colls.pop(coll.name, None)
        self._add_notes(report, coll, repair)
        return report

    def sync(self, folders: list[str | Path], collection: str = "default",
             progress: ProgressFn | None = None) -> IngestReport:
        return self.ingest(folders, collection=collection, progress=progress, sync=True)

    def remove(self, sources: list[str], collection: str = "default") -> IngestReport:
        coll = self._collection(collection, create=False)
        folder = self._folder(coll)
        self._model(coll)  # before the lock: a tuned model found unusable is reverted under it
        with CollectionLock(folder, self.store, coll.id), faiss_threads(self.settings.threads):
            idx = self._new_indexes(coll)
            repair = idx.open(persist=True)
            report = self._job(coll, idx, None).remove(sources)
            self._indexes[coll.name] = idx
            self._opened.add(coll.name)  # loaded and repaired on disk, under the lock
            self._search_colls.pop(coll.name, None)
        self._add_notes(report, coll, repair)
        return report

    def _job(self, coll: CollectionRow, idx: CollectionIndexes, progress: ProgressFn | None) -> IngestJob:
        ing = self.settings.ingest
        return IngestJob(
            self.store, self._model(coll).embedder or self.embedder, coll, idx, chunk_tokens=coll.chunk_tokens,
            chunk_overlap=coll.chunk_overlap,
            file_timeout_s=ing.file_timeout_s, max_file_mb=ing.max_file_mb, progress=progress,
        )

    def _add_notes(self, report: IngestReport, coll: CollectionRow, repair: Any) -> None:
        if repair.any:
            report.repaired = {
                "vectors_added": repair.vectors_added, "vectors_removed": repair.vectors_removed,
                "vectors_rebuilt": repair.vectors_rebuilt, "lexical_rebuilt": repair.lexical_rebuilt,
            }
            report.notes.append(
                f"indexes were out of step with the store and were repaired from stored embeddings "
                f"(+{repair.vectors_added} / -{repair.vectors_removed} vectors, BM25 rebuilt: {repair.lexical_rebuilt})"
            )
        ing = self.settings.ingest
        if (coll.chunk_tokens, coll.chunk_overlap) != (ing.chunk_tokens, ing.chunk_overlap):
            report.notes.append(
                f"collection {coll.name!r} keeps its own chunking ({coll.chunk_tokens} tokens, overlap "
                f"{coll.chunk_overlap}); the configured ingest.chunk_tokens/chunk_overlap apply to new collections"
            )

    # --- status --------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The data directory, the database and, per collection, its model, chunking, row counts (the store's
        `collection_stats`), index health and last ingest run."""
        out: dict[str, Any] = {"data_dir": str(self.data_dir), "database": self.store.display_url, "collections": []}
        for coll in self.store.collections():
            stats = self.store.collection_stats(coll.id)
            idx = self._open_indexes(coll)
            out["collections"].append({
                "name": coll.name,
                "embedding_model": coll.embedding_model,
                "embedding_dim": coll.embedding_dim,
                "tuned_model": self._model(coll).tag,  # `localrag tune`'s run in use (None: the base model)
                "chunk_tokens": coll.chunk_tokens,
                "chunk_overlap": coll.chunk_overlap,
                "corpus_version": coll.corpus_version,
                **{k: stats[k] for k in ("documents", "duplicates", "kinds", "chunks", "kg_nodes", "kg_edges")},
                "index": idx.health(),
                "last_run": stats["last_run"],
            })
        return out

    # --- search ------------------------------------------------------------------------------------------------
    @property
    def reranker(self) -> Reranker | None:
        """The configured cross-encoder, or None: no reranker is active unless `search.reranker_model` is set."""
        s = self.settings.search
        if self._reranker is None and s.reranker_model:
            self._reranker = Reranker(s.reranker_model, device=self.settings.device, batch_size=s.rerank_batch_size)
        return self._reranker

    def search(
        self, query: str, k: int = 5, collection: str = "default", mode: str | None = None,
        filters: Filters | dict[str, Any] | None = None, rerank: bool | None = None, expand: bool = False,
        fusion: str | None = None, candidates: int | None = None, min_relevance: float | None = None,
        **params: Any,
    ) -> SearchResults:
        """Hybrid (or dense / lexical) search of a collection; returns hits best first, with per-stage scores,
        ranks and timings. `filters`: `{"kinds": [...], "sources": ["*.md"]}`. `rerank`: None = when a reranker is
        configured, True = required, False = skip. `expand`: add knowledge-graph neighbours to RDF hits.
        Other keyword arguments set SearchParams fields (rrf_k, weights, alpha, rerank_top)."""
        if not isinstance(query, str) or not query.strip():
            raise RagError("empty query: type a question or some keywords")
        st = self.settings.search
        p = SearchParams(
            k=k, mode=mode or st.mode, fusion=fusion or st.fusion, candidates=candidates or st.candidates,
            rrf_k=st.rrf_k, weights={"dense": st.rrf_weight_dense, "lexical": st.rrf_weight_lexical},
            alpha=st.convex_alpha, norm=st.fusion_norm, adaptive=st.fusion_adaptive, conf_top=st.fusion_conf_top,
            min_relevance=st.min_relevance if min_relevance is None else min_relevance,
            rerank_top=st.rerank_top, expand=expand, max_neighbours=st.kg_max_neighbours,
        )
        for key, value in params.items():
            if not hasattr(p, key):
                raise RagError(f"unknown search parameter {key!r}")
            setattr(p, key, value)
        try:
            p.check()
            f = Filters.coerce(filters)
        except (SearchError, ValueError, TypeError) as exc:
            raise RagError(str(exc)) from None
        reranker = None
        if rerank is not False:
            reranker = self.reranker
            if reranker is None and rerank:
                raise RagError("reranking was asked for, but no reranker is configured: set search.reranker_model "
                               "(LOCALRAG_SEARCH__RERANKER_MODEL) to a sentence-transformers CrossEncoder id or folder")
        coll = self._search_collection(collection)
        embedder = self._model(coll).embedder or self.embedder
        if p.mode != "lexical":
            _ = embedder.model  # load before the clock starts: stage timings measure searching, not loading
        for attempt in range(5):
            idx = self._open_indexes(coll)
            try:
                res = Searcher(self.store, embedder, idx, reranker).search(query, p, f)
            except StaleIndex:
                with self._indexes_lock:
                    if self._indexes.get(coll.name) is idx:
                        del self._indexes[coll.name]  # reload from the store on the next attempt
                if attempt == 4:
                    raise RagError("the collection kept changing during the search (an ingest is running); "
                                   "try again") from None
                continue
            except RerankerError as exc:
                raise RagError(str(exc)) from None
            res.collection = collection
            if reranker is None and p.mode != "lexical":
                log.debug("no reranker active")
            return res
        raise AssertionError("unreachable")

    # --- answering -------------------------------------------------------------------------------------------
    @property
    def llm(self) -> LlamaCppLLM | OpenAICompatLLM:
        """The configured LLM, loaded on first use (llm.backend, llm.model, ...). Raises app.llm.LLMError."""
        if self._llm is None:
            from localrag.app.llm import make_llm

            with self._llm_lock:
                if self._llm is None:
                    self._llm = make_llm(self.settings)
        return self._llm

    def set_llm(self, llm: Any) -> None:
        """Use this LLM object (anything following app.llm.LLM) instead of the configured one."""
        self._llm = llm

    def set_verifier(self, llm: Any) -> None:
        """Use this LLM object (anything with `yes_probability`) to check generated answers (answer.verify_model)."""
        self._verifier = llm

    def verifier(self) -> LlamaCppLLM | OpenAICompatLLM | None:
        """The model that checks generated answers in auto mode (answer.verify_model), loaded on first use and kept;
        the answering model itself when the setting names the same file; None when the setting is none. Raises
        app.llm.LLMError (e.g. not pulled: the error names `localrag models pull ...`); the route then answers
        unchecked, with a warning."""
        if self.settings.answer.verify_model is None:
            return None
        if self._verifier is None:
            from localrag.app.llm.factory import answering_gguf, make_judge_llm, verify_gguf

            path = verify_gguf(self.settings)
            if path is None:
                return None
            if path == answering_gguf(self.settings):
                return self.llm
            with self._llm_lock:
                if self._verifier is None:
                    self._verifier, self._verifier_owned = make_judge_llm(self.settings, path), True
        return self._verifier

    def judge_llm(self) -> tuple[LlamaCppLLM | OpenAICompatLLM, bool]:
        """The LLM that the LLM judge asks (`localrag eval --judge llm`), and whether it was loaded for the judge alone
        (then the caller closes it): the model eval.judge_model names, loaded in process apart from the answering
        model (app.llm.factory: a models.ModelError naming the pull command when it is not pulled; nothing is
        downloaded), or the answering model itself (`self.llm`, one instance) when the setting is none or names the
        same file."""
        from localrag.app.llm.factory import answering_gguf, judge_gguf, make_judge_llm

        path = judge_gguf(self.settings)
        if path is None or path == answering_gguf(self.settings):
            return self.llm, False
        return make_judge_llm(self.settings, path), True

    def llm_model_id(self) -> str:
        """The model id without loading the model where possible (a cache hit should not cost a model load)."""
        if self._llm is not None:
            return self._llm.model_id
        if self.settings.llm.backend == "llama-cpp":
            from localrag.app.llm import resolve_gguf
            from localrag.app.llm.models import DEFAULT_MODEL

            return resolve_gguf(self.settings.llm.model or DEFAULT_MODEL).name
        return self.settings.llm.model or self.llm.model_id

    @property
    def cache(self) -> SemanticCache:
        if self._cache is None:
            from localrag.app.cache import SemanticCache

            s = self.settings.answer
            self._cache = SemanticCache(self.store, self.embedder, threshold=s.cache_threshold, ttl_s=s.cache_ttl_s)
        return self._cache

    def score_answer(self, question: str, ans: Answer, reference: str | None = None) -> dict[str, Any]:
        """The fast, non-LLM scores of an answer (eval.scoring.ProxyScorer): faithfulness as the share of its
        sentences supported by the sources they cite, answer relevancy as question/answer similarity, and context
        precision. Labelled with the judge that produced them ("proxy")."""
        from localrag.eval.scoring import ProxyScorer

        if self._scorer is None:
            self._scorer = ProxyScorer(self.embedder)
        by_n = {s.n: s.text for s in ans.sources}
        cited = {c.n: by_n[c.n] for c in ans.citations if c.n in by_n}
        metrics = ["faithfulness", "answer_relevancy", "context_precision"] + (["context_recall"] if reference else [])
        return self._scorer.score(question, ans.text, [s.text for s in ans.sources], cited=cited or None,
                                  reference=reference, abstained=ans.abstained, metrics=metrics).to_dict()

    def cache_stats(self, collection: str | None = None) -> dict[str, Any]:
        """The answer cache's entries and what its lookups did, in every process (SemanticCache.stats): hits by kind
        ("exact", "paraphrase"), misses, refused candidates by reason; of one collection, or all."""
        coll_id = None if collection is None else self._collection(collection, create=False).id
        return self.cache.stats(coll_id)

    def clear_cache(self, collection: str | None = None) -> int:
        """Forget cached answers (of one collection, or all). Returns how many were removed."""
        coll_id = None
        if collection is not None:
            coll_id = self._collection(collection, create=False).id
        return self.cache.clear(coll_id)

    def rewrite_question(self, question: str, history: Sequence[dict[str, str]] | Sequence[tuple[str, str]]) -> str:
        """A follow-up rewritten into a standalone question from the chat history (see app.answering.prompt)."""
        from localrag.app.answering import rewrite_question

        return rewrite_question(self.llm, as_messages(history), question)

    def ask(self, question: str, collection: str = "default", **kw: Any) -> Answer:
        """Answer a question from a collection's documents, with numbered citations; 'I don't know' when the
        sources do not support an answer. Keyword arguments as for `ask_stream`."""
        final = None
        for event in self._answer_events(question, collection, stream=False, **kw):
            final = event
        assert isinstance(final, Answer)
        return final

    def ask_stream(self, question: str, collection: str = "default", **kw: Any) -> Generator[AskEvent, None, None]:
        """Like `ask`, streaming: yields text pieces as the model writes them, a `Restart` when a draft failed a
        guardrail and is being rewritten (discard what was shown), a `Replace` when auto mode's generated answer
        replaces the quote shown first (discard what was shown), and the final `Answer` last.

        Keyword arguments (app.ask.AskOptions.build): answer_mode ("generative" | "extractive" | "auto"; None = the
        answer.mode setting; extractive never loads the LLM, auto streams the quote at once and then the
        model's answer over the same sources when it passes its checks), k, mode, filters, rerank, expand (as for
        search; `mode` is the search mode), history (earlier turns, as [{"role": "user"|"assistant", "content": ...}] or
        [(question, answer)]), cache (False: bypass it), temperature, top_p, max_tokens, stop (sampling
        overrides)."""
        return self._answer_events(question, collection, stream=True, **kw)

    def ask_options(self, question: str, collection: str = "default", **kw: Any) -> AskOptions:
        """The checked options of one ask (app.ask.AskOptions), as `ask` builds them."""
        if not isinstance(question, str) or not question.strip():
            raise RagError("empty question: type a question")
        coll = self._collection(collection, create=False)
        try:
            return AskOptions.build(self.settings, question, collection, coll.id, **kw)
        except ValueError as exc:
            raise RagError(str(exc)) from None

    def _answer_events(
        self, question: str, collection: str, *, stream: bool, **kw: Any
    ) -> Generator[AskEvent, None, None]:
        from localrag.app.llm import LLMError

        opts = self.ask_options(question, collection, **kw)
        _ = self.embedder.model  # loaded before the clock starts: timings measure answering, not model loading
        try:
            yield from answer_events(self, opts, stream=stream)
        except LLMError as exc:
            raise RagError(str(exc)) from None

    def corpus_version(self, collection_id: int) -> int:
        return self.store.corpus_version(collection_id)

    # --- tuning the embedder on the collection's documents (app/tune/) -----------------------------------------
    def tune(
        self, collection: str = "default", max_chunks: int | None = None, undo: bool = False,
        progress: Callable[[str, int, int], None] | None = None, options: TuneOptions | None = None,
    ) -> dict[str, Any]:
        """Adapt the collection's embedder to its documents (issue 23): the LLM writes a question per chunk (all, or
        `max_chunks` sampled by document; stored as made, so a re-run resumes), the questions the current search
        cannot place are dropped, the embedder is fine-tuned on the rest with hard negatives, and the collection
        switches to it only when held-out recall@5 improves. `undo`: back to the base model. `progress(stage,
        done, total)`. Returns the report (app.tune.TuneReport.to_dict). A second tune or undo of the collection
        while one runs (another process, the UI) is refused at once with a RagError naming it (pid, started)."""
        from localrag.app.llm import LLMError
        from localrag.app.tune import TuneParts, revert, tune_collection

        coll = self._collection(collection, create=False)
        folder = self._folder(coll)

        def lock() -> CollectionLock:
            return CollectionLock(folder, self.store, coll.id)

        try:  # one tune (or undo) of a collection at a time, in any process: TuneRunning names the one running
            with CollectionLock(folder, self.store, coll.id, purpose="tune") as guard:
                if undo:
                    with lock():
                        return revert(self.store, coll, folder, self.embedder)
                if self.settings.storage.vector_backend != "faiss":
                    raise RagError("tune needs the FAISS vector backend (storage.vector_backend = faiss) in this "
                                   "version")
                opts = options or TuneOptions()
                if max_chunks is not None:
                    opts = dataclasses.replace(opts, max_chunks=max_chunks)
                parts = TuneParts(
                    self.store, coll, folder, self.embedder, resolve_model(self.settings.embedding_model)[1],
                    lambda: self.llm, lambda: self._open_indexes(coll), lambda f: self._new_indexes(coll, f), lock,
                    guard.stale,
                )
                return tune_collection(parts, opts, progress).to_dict()
        except (TuneError, CollectionBusy, LLMError) as exc:
            raise RagError(str(exc)) from None
        finally:
            self._models.pop(coll.id, None)

    # --- documents, conversations and feedback (app/conversations.py) ------------------------------------------
    def documents(self, collection: str = "default") -> list[dict[str, Any]]:
        """The documents of a collection, by source: kind, status ("ok", or "duplicate" of another file), chunks,
        pages (PDFs), title, size in bytes, when ingested, and warnings."""
        return self.store.document_list(self._collection(collection, create=False).id)

    @property
    def conversations(self) -> Conversations:
        """Saved chats and 👍/👎 feedback, in this data directory's database (app/conversations.py)."""
        conv: Conversations | None = self.__dict__.get("_conversations")
        if conv is None:
            from localrag.app.conversations import Conversations

            conv = self.__dict__.setdefault("_conversations", Conversations(self.store))
        return conv

    def feedback(self, rating: int | str, *, message_id: int | None = None, answer: Any = None,
                 comment: str | None = None) -> int:
        """Rate an answer 👍 ("up", 1) or 👎 ("down", -1): a saved chat message by id, or an Answer. Returns the
        feedback id; `export_sft` turns the ratings into fine-tuning data."""
        return self.conversations.rate(rating, message_id=message_id, answer=answer, comment=comment)

    def export_sft(self, out: str | Path, rating: str = "up", collection: str | None = None) -> int:
        """Write rated answers as chat-format JSONL for TRL's SFTTrainer / Unsloth; returns the number of lines."""
        return self.conversations.export_sft(out, rating=rating, collection=collection)  # type: ignore[arg-type]


