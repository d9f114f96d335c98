"""The Rag facade: the one Python API that the CLI, the UI and users call."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from localrag.app.config import Settings, load_settings
from localrag.index.embedder import Embedder, resolve_model
from localrag.index.indexes import CollectionIndexes, VectorSettings
from localrag.index.store import (
    ChunkRow,
    CollectionRow,
    DocumentRow,
    IngestRunRow,
    KgEdgeRow,
    KgNodeRow,
    Store,
    StoreError,
)
from localrag.ingest.job import CollectionLock, IngestJob, IngestLocked, IngestReport, ProgressFn
from localrag.retrieval.rerank import Reranker, RerankerError
from localrag.retrieval.search import Searcher, SearchError, SearchParams, StaleIndex
from localrag.retrieval.types import Filters, Hit, Neighbour, SearchResults

if TYPE_CHECKING:
    from localrag.app.answering import Answer, Restart
    from localrag.app.cache import SemanticCache
    from localrag.app.conversations import Conversations
    from localrag.app.llm import LlamaCppLLM, OpenAICompatLLM

__all__ = ["Filters", "Hit", "ModelMismatch", "Neighbour", "Rag", "RagError", "SearchResults"]

log = logging.getLogger(__name__)


MAX_COLLECTION_NAME = 200  # collections.name is VARCHAR(200): PostgreSQL enforces it (SQLite does not)


class RagError(RuntimeError):
    """A problem the user can fix; the message says how."""


class ModelMismatch(RagError):
    pass


@dataclass
class AskPlan:
    """One question on its way through `Rag._ask`: what was asked, what is searched, and what the answer depends on
    (the cache scope). Filled by `_plan_ask`; the later stages read it and add their timings."""

    question: str
    collection: str
    collection_id: int
    k: int
    standalone: str  # the question as searched (a follow-up rewritten from the history)
    t_start: float
    search: dict[str, Any] = field(default_factory=dict)  # mode, filters, rerank, expand for Rag.search
    use_cache: bool = False
    max_tokens: int = 0
    sampling: dict[str, Any] = field(default_factory=dict)
    scope: str = ""  # the cache key's scope: prompt version, retrieval and sampling parameters (JSON)
    model_id: str = ""
    answer_mode: str = "generative"  # generative | extractive | auto (Settings.answer_mode)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rewritten(self) -> str | None:
        """The standalone question when it differs from the one asked (a rewritten follow-up), else None."""
        return self.standalone if self.standalone != self.question.strip() else None


class Rag:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.database_url or f"sqlite:///{self.data_dir / 'localrag.sqlite'}"
        try:
            self.store = Store(url)
        except StoreError as exc:
            raise RagError(str(exc)) from None
        self._embedder: Embedder | None = embedder  # share one across Rag objects to load the model once
        self._indexes: dict[str, CollectionIndexes] = {}
        self._indexes_lock = threading.Lock()
        # collections looked up for search, checked against the configured model once (their id, model and
        # dimension never change); ingest and remove drop the entry. Saves an ORM query per search.
        self._search_colls: dict[str, CollectionRow] = {}
        self._reranker: Reranker | None = None
        self._llm: LlamaCppLLM | OpenAICompatLLM | None = None
        self._llm_lock = threading.Lock()
        self._cache: SemanticCache | None = None
        self._scorer: Any = None

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
            self._embedder = Embedder(s.embedding_model, device=s.device, batch_size=s.embed_batch_size)
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
            with self.store.session() as s:
                coll = CollectionRow(
                    name=name, embedding_model=model_id, embedding_dim=self.embedder.dim,
                    chunk_tokens=self.settings.chunk_tokens, chunk_overlap=self.settings.chunk_overlap,
                )
                s.add(coll)
            return self.store.collection(name)
        if coll.embedding_model != model_id:
            raise ModelMismatch(
                f"collection {name!r} was built with the embedding model {coll.embedding_model} "
                f"({coll.embedding_dim}-d), but the configured model is {model_id}. Vectors from two models cannot "
                "be compared: configure the collection's model, or use another --collection."
            )
        return coll

    def _new_indexes(self, coll: CollectionRow) -> CollectionIndexes:
        return CollectionIndexes(
            self.store, coll.id, coll.embedding_dim, self._folder(coll), self.settings.lexical_backend,
            use_gpu=self.settings.use_gpu, vector_settings=self._vector_settings(coll),
        )

    def _vector_settings(self, coll: CollectionRow) -> VectorSettings:
        st = self.settings
        return VectorSettings(
            backend=st.vector_backend, faiss_index=st.faiss_index, ann_threshold=st.faiss_ann_threshold,
            nprobe=st.faiss_nprobe, milvus_uri=st.milvus_uri or str(self.data_dir / "milvus.db"),
            milvus_index=st.milvus_index, milvus_collection=f"{st.milvus_collection_prefix}_{coll.id:04d}",
        )

    def _open_indexes(self, coll: CollectionRow) -> CollectionIndexes:
        """Indexes of a collection, in step with the store (repaired on disk when no ingest holds the lock)."""
        with self._indexes_lock:  # threads share one reload; searches keep the object they started with
            cached = self._indexes.get(coll.name)
            if cached is not None and cached.version == self.store.corpus_version(coll.id):
                return cached
            idx = self._new_indexes(coll)
            try:
                with CollectionLock(self._folder(coll), self.store, coll.id):
                    idx.open(persist=True)
            except IngestLocked:
                idx.open(persist=False)  # an ingest is running: catch up in memory, write nothing
            self._indexes[coll.name] = idx
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
        self, paths: list[str | Path], collection: str = "default", progress: ProgressFn | None = None,
        sync: bool = False,
    ) -> IngestReport:
        """Ingest files and folders. With `sync=True`, documents under the given folders whose files are gone are
        removed too. Unchanged files are skipped; changed ones replace their old chunks."""
        coll = self._collection(collection, create=True)
        folder = self._folder(coll)
        with CollectionLock(folder, self.store, coll.id):
            idx = self._new_indexes(coll)
            repair = idx.open(persist=True)
            job = self._job(coll, idx, progress)
            p = [Path(x) for x in paths]
            report = job.ingest(p, sync_dirs=[x for x in p if x.is_dir()] if sync else None,
                                command="sync" if sync else "ingest")
            self._indexes[coll.name] = idx
            self._search_colls.pop(coll.name, None)
        self._add_notes(report, coll, repair)
        return report

    def sync(self, folders: list[str | Path], collection: str = "default",
             progress: ProgressFn | None = None) -> IngestReport:
        return self.ingest(folders, collection=collection, progress=progress, sync=True)

    def remove(self, sources: list[str], collection: str = "default") -> IngestReport:
        coll = self._collection(collection, create=False)
        folder = self._folder(coll)
        with CollectionLock(folder, self.store, coll.id):
            idx = self._new_indexes(coll)
            repair = idx.open(persist=True)
            report = self._job(coll, idx, None).remove(sources)
            self._indexes[coll.name] = idx
            self._search_colls.pop(coll.name, None)
        self._add_notes(report, coll, repair)
        return report

    def _job(self, coll: CollectionRow, idx: CollectionIndexes, progress: ProgressFn | None) -> IngestJob:
        return IngestJob(
            self.store, self.embedder, coll, idx, chunk_tokens=coll.chunk_tokens, chunk_overlap=coll.chunk_overlap,
            file_timeout_s=self.settings.file_timeout_s, max_file_mb=self.settings.max_file_mb, progress=progress,
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
        if (coll.chunk_tokens, coll.chunk_overlap) != (self.settings.chunk_tokens, self.settings.chunk_overlap):
            report.notes.append(
                f"collection {coll.name!r} keeps its own chunking ({coll.chunk_tokens} tokens, overlap "
                f"{coll.chunk_overlap}); the configured chunk_tokens/chunk_overlap apply to new collections"
            )

    # --- status --------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"data_dir": str(self.data_dir), "database": self.store.display_url, "collections": []}
        for coll in self.store.collections():
            with self.store.session() as s:
                def count(q: Any) -> int:
                    return int(s.scalar(q) or 0)

                docs = count(select(func.count()).select_from(DocumentRow).where(
                    DocumentRow.collection_id == coll.id, DocumentRow.status == "ok"))
                dups = count(select(func.count()).select_from(DocumentRow).where(
                    DocumentRow.collection_id == coll.id, DocumentRow.status == "duplicate"))
                chunks = count(select(func.count()).select_from(ChunkRow).where(ChunkRow.collection_id == coll.id))
                nodes = count(select(func.count()).select_from(KgNodeRow).where(KgNodeRow.collection_id == coll.id))
                edges = count(select(func.count()).select_from(KgEdgeRow).where(KgEdgeRow.collection_id == coll.id))
                kinds = dict(s.execute(
                    select(DocumentRow.kind, func.count()).where(
                        DocumentRow.collection_id == coll.id, DocumentRow.status == "ok"
                    ).group_by(DocumentRow.kind)).all())
                last = s.scalars(select(IngestRunRow).where(IngestRunRow.collection_id == coll.id)
                                 .order_by(IngestRunRow.id.desc())).first()
            idx = self._open_indexes(coll)
            out["collections"].append({
                "name": coll.name,
                "embedding_model": coll.embedding_model,
                "embedding_dim": coll.embedding_dim,
                "chunk_tokens": coll.chunk_tokens,
                "chunk_overlap": coll.chunk_overlap,
                "corpus_version": coll.corpus_version,
                "documents": docs,
                "duplicates": dups,
                "kinds": kinds,
                "chunks": chunks,
                "kg_nodes": nodes,
                "kg_edges": edges,
                "index": idx.health(),
                "last_run": None if last is None else {
                    "id": last.id, "command": last.command, "status": last.status,
                    "started": f"{last.started:%Y-%m-%d %H:%M:%S}",
                },
            })
        return out

    # --- search ------------------------------------------------------------------------------------------------
    @property
    def reranker(self) -> Reranker | None:
        """The configured cross-encoder, or None: no reranker is active unless `reranker_model` is set."""
        if self._reranker is None and self.settings.reranker_model:
            s = self.settings
            self._reranker = Reranker(s.reranker_model, device=s.device, batch_size=s.rerank_batch_size)
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
        st = self.settings
        p = SearchParams(
            k=k, mode=mode or st.search_mode, fusion=fusion or st.fusion, candidates=candidates or st.candidates,
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
                raise RagError("reranking was asked for, but no reranker is configured: set reranker_model "
                               "(LOCALRAG_RERANKER_MODEL) to a sentence-transformers CrossEncoder id or folder")
        coll = self._search_collection(collection)
        if p.mode != "lexical":
            _ = self.embedder.model  # load before the clock starts: stage timings measure searching, not loading
        for attempt in range(5):
            idx = self._open_indexes(coll)
            try:
                res = Searcher(self.store, self.embedder, idx, reranker).search(query, p, f)
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
        """The configured LLM, loaded on first use (llm_backend, llm_model, ...). Raises app.llm.LLMError."""
        if self._llm is None:
            from localrag.app.llm import make_llm

            with self._llm_lock:
                if self._llm is None:
                    self._llm = make_llm(self.settings)
        return self._llm

    def set_llm(self, llm: Any) -> None:
        """Use this LLM object (anything following app.llm.LLM) instead of the configured one."""
        self._llm = llm

    def _llm_model_id(self) -> str:
        """The model id without loading the model where possible (a cache hit should not cost a model load)."""
        if self._llm is not None:
            return self._llm.model_id
        if self.settings.llm_backend == "llama-cpp":
            from localrag.app.llm import resolve_gguf

            return resolve_gguf(self.settings.llm_model).name
        return self.settings.llm_model or self.llm.model_id

    @property
    def cache(self) -> SemanticCache:
        if self._cache is None:
            from localrag.app.cache import SemanticCache

            s = self.settings
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

    def clear_cache(self, collection: str | None = None) -> int:
        """Forget cached answers (of one collection, or all). Returns how many were removed."""
        coll_id = None
        if collection is not None:
            coll_id = self._collection(collection, create=False).id
        return self.cache.clear(coll_id)

    def rewrite_question(self, question: str, history: Sequence[dict[str, str]] | Sequence[tuple[str, str]]) -> str:
        """A follow-up rewritten into a standalone question from the chat history (see app.answer)."""
        from localrag.app.answering import rewrite_question

        return rewrite_question(self.llm, _as_messages(history), question)

    def ask(self, question: str, collection: str = "default", **kw: Any) -> Answer:
        """Answer a question from a collection's documents, with numbered citations; 'I don't know' when the
        sources do not support an answer. Keyword arguments as for `ask_stream`."""
        final = None
        for event in self._ask(question, collection, stream=False, **kw):
            final = event
        assert final is not None
        return final  # type: ignore[return-value]

    def ask_stream(self, question: str, collection: str = "default", **kw: Any) -> Iterator[str | Restart | Answer]:
        """Like `ask`, streaming: yields text pieces as the model writes them, a `Restart` when a draft failed a
        guardrail and is being rewritten (discard what was shown), and the final `Answer` last.

        Keyword arguments: answer_mode ("generative" | "extractive" | "auto"; None = the answer_mode setting;
        extractive never loads the LLM, auto falls back to the extractive answer when the drafts fail a hard
        guardrail, after a `Restart`), k, mode, filters, rerank, expand (as for search; `mode` is the search mode),
        history (earlier turns, as [{"role": "user"|"assistant", "content": ...}] or [(question, answer)]), cache
        (False: bypass it), temperature, top_p, max_tokens, stop (sampling overrides)."""
        return self._ask(question, collection, stream=True, **kw)

    def _ask(
        self, question: str, collection: str, *, stream: bool, k: int | None = None, mode: str | None = None,
        filters: Filters | dict[str, Any] | None = None, rerank: bool | None = None, expand: bool = False,
        history: Sequence[Any] | None = None, cache: bool | None = None, temperature: float | None = None,
        top_p: float | None = None, max_tokens: int | None = None, stop: Sequence[str] | None = None,
        answer_mode: str | None = None,
    ) -> Iterator[Any]:
        """The answering pipeline, one named stage each: plan (check, rewrite a follow-up, cache scope) -> cache
        lookup -> retrieve -> (abstain without relevant sources) -> generate with guardrails -> provenance ->
        score -> store in the cache. Yields what `ask_stream` documents; the final Answer last."""
        plan = self._plan_ask(question, collection, k=k, mode=mode, filters=filters, rerank=rerank, expand=expand,
                              history=history, cache=cache, temperature=temperature, top_p=top_p,
                              max_tokens=max_tokens, stop=stop, answer_mode=answer_mode)
        cached = self._cached_answer(plan) if plan.use_cache else None
        if cached is not None:
            yield from _emit(cached, stream)
            return
        res, relevant = self._retrieve_sources(plan)
        if not relevant:
            yield from _emit(self._no_sources_answer(plan, res), stream)
            return
        if plan.answer_mode == "extractive":
            final = self._extractive_answer(plan, relevant)
            if stream:
                yield final.text
        else:
            final = yield from self._generate_answer(plan, relevant, stream)
            if plan.answer_mode == "auto":
                final = yield from self._auto_fallback(plan, final, stream)
        self._add_provenance(plan, final, res)
        self._score_stage(plan, final)
        final.timings = {**plan.timings, **final.timings, "total": time.perf_counter() - plan.t_start}
        if plan.use_cache and not final.abstained:
            self._store_answer(plan, final, res)
        yield final

    # --- the stages of _ask, in order ----------------------------------------------------------------------
    def _plan_ask(
        self, question: str, collection: str = "default", *, k: int | None = None, mode: str | None = None,
        filters: Filters | dict[str, Any] | None = None, rerank: bool | None = None, expand: bool = False,
        history: Sequence[Any] | None = None, cache: bool | None = None, temperature: float | None = None,
        top_p: float | None = None, max_tokens: int | None = None, stop: Sequence[str] | None = None,
        answer_mode: str | None = None,
    ) -> AskPlan:
        """Check the question and the collection, rewrite a follow-up into a standalone question (with `history`),
        and fix what the answer depends on: the cache scope (prompt version, retrieval and sampling parameters)
        and the model id. The clock starts here, after the embedding model is loaded."""
        from localrag.app.answering import PROMPT_VERSION, rewrite_question
        from localrag.app.answering.extractive import EXTRACTIVE_MODEL_ID
        from localrag.app.llm import LLMError

        if not isinstance(question, str) or not question.strip():
            raise RagError("empty question: type a question")
        st = self.settings
        coll = self._collection(collection, create=False)
        _ = self.embedder.model  # loaded before the clock starts: timings measure answering, not model loading
        answer_mode = answer_mode or st.answer_mode
        if answer_mode not in ANSWER_MODES:
            raise RagError(f"unknown answer mode {answer_mode!r}: use one of {', '.join(ANSWER_MODES)}")
        plan = AskPlan(question=question, collection=collection, collection_id=coll.id, k=k or st.answer_k,
                       standalone=question.strip(), t_start=time.perf_counter(),
                       search={"mode": mode, "filters": filters, "rerank": rerank, "expand": expand},
                       answer_mode=answer_mode)
        try:
            if history and answer_mode == "extractive":  # no LLM: the previous question gives the context
                plan.standalone = _standalone_without_llm(_as_messages(history), plan.standalone)
            elif history:
                t = time.perf_counter()
                plan.standalone = rewrite_question(self.llm, _as_messages(history), plan.standalone)
                plan.timings["rewrite"] = time.perf_counter() - t
            plan.use_cache = st.cache_enabled if cache is None else cache
            plan.max_tokens = max_tokens or st.answer_max_tokens
            plan.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": plan.max_tokens,
                             "stop": list(stop) if stop else None}
            plan.scope = json.dumps({"prompt": PROMPT_VERSION, "answer_mode": answer_mode, "k": plan.k,
                                     "mode": mode or st.search_mode,
                                     "filters": Filters.coerce(filters).__dict__, "expand": expand, "rerank": rerank,
                                     "floor": st.answer_min_relevance, "sampling": plan.sampling}, sort_keys=True)
            plan.model_id = EXTRACTIVE_MODEL_ID if answer_mode == "extractive" else self._llm_model_id()
        except LLMError as exc:
            raise RagError(str(exc)) from None
        except (ValueError, TypeError) as exc:
            raise RagError(str(exc)) from None
        return plan

    def _cached_answer(self, plan: AskPlan) -> Answer | None:
        """The cached answer to this question (or an equivalent one) in this scope, model and corpus version."""
        from localrag.app.answering import Answer

        t = time.perf_counter()
        version = self.store.corpus_version(plan.collection_id)
        hit = self.cache.lookup(plan.collection_id, version, plan.model_id, plan.scope, plan.standalone)
        plan.timings["cache"] = time.perf_counter() - t
        if hit is None:
            return None
        ans = Answer.from_dict(hit.payload)
        ans.question, ans.cached = plan.question, True
        ans.cache = {"kind": hit.kind, "similarity": round(hit.similarity, 4),
                     "matched_question": hit.matched_question, "age_s": round(hit.age_s, 1)}
        ans.timings = {**plan.timings, "total": time.perf_counter() - plan.t_start}
        ans.tokens = {"prompt": 0, "completion": 0}
        return ans

    def _retrieve_sources(self, plan: AskPlan) -> tuple[SearchResults, list[Hit]]:
        """Search for the standalone question; the hits at or above answer_min_relevance are the candidate
        sources."""
        res = self.search(plan.standalone, k=plan.k, collection=plan.collection, **plan.search)
        plan.timings["retrieve"] = res.timings.get("total", 0.0)
        relevant = [h for h in res if h.relevance >= self.settings.answer_min_relevance]
        return res, relevant

    def _no_sources_answer(self, plan: AskPlan, res: SearchResults) -> Answer:
        """The abstention when no source is relevant enough (the model is not called)."""
        from localrag.app.answering import IDK, Answer

        floor = self.settings.answer_min_relevance
        best = max((h.relevance for h in res), default=None)
        why = ("the collection has no matching chunks" if best is None else
               f"no source is relevant enough (best relevance {best:.2f} < answer_min_relevance {floor:.2f})")
        ans = Answer(question=plan.question, text=IDK, abstained=True, abstain_reason=why, model_id=plan.model_id,
                     collection=plan.collection, corpus_version=res.corpus_version, warnings=list(res.notes),
                     standalone_question=plan.rewritten, tokens={"prompt": 0, "completion": 0},
                     mode=plan.answer_mode)
        ans.timings = {**plan.timings, "total": time.perf_counter() - plan.t_start}
        return ans

    def _generate_answer(self, plan: AskPlan, relevant: list[Hit], stream: bool) -> Iterator[Any]:
        """Write the answer from the sources with the guardrails (app.answer.Answerer) in a context budget that
        leaves room for the instructions, the question, the answer and a retry's draft. Yields the text pieces
        and Restarts; returns the Answer (``final = yield from ...``)."""
        from localrag.app.answering import Answer, Answerer
        from localrag.app.llm import LLMError

        st = self.settings
        final: Answer | None = None
        try:
            llm = self.llm
            budget = st.answer_context_tokens
            n_ctx = getattr(llm, "n_ctx", None)
            if n_ctx:
                budget = max(64, min(budget, n_ctx - 2 * plan.max_tokens - 400))
            answerer = Answerer(llm, retries=st.answer_retries, context_tokens=budget, sampling=plan.sampling,
                                max_tokens=plan.max_tokens)
            for event in answerer.run(plan.standalone, relevant, stream=stream):
                if isinstance(event, Answer):
                    final = event
                else:
                    yield event
        except LLMError as exc:
            raise RagError(str(exc)) from None
        assert final is not None
        final.mode = "auto:generative" if plan.answer_mode == "auto" else "generative"
        return final

    def _count_tokens_cheap(self, text: str) -> int:
        """Token counts for the source budget when no LLM is loaded: the embedder's tokenizer (already loaded)."""
        return self.embedder.token_counts([text])[0]

    def _extract(self, plan: AskPlan, sources: Sequence[Any]) -> Any:
        from localrag.app.answering.extractive import extract_answer

        return extract_answer(plan.standalone, sources, self.embedder)

    def _extractive_answer(self, plan: AskPlan, relevant: list[Hit]) -> Answer:
        """The extractive answer (app.extractive): the same numbered sources as for the LLM (its context budget,
        counted with the embedder's tokenizer), the best supporting sentence(s) quoted and cited, or 'I don't
        know'. The LLM is not loaded."""
        from localrag.app.answering import IDK, assemble_context
        from localrag.app.answering.extractive import EXTRACTIVE_MODEL_ID, to_answer

        t = time.perf_counter()
        sources, notes = assemble_context(relevant, self._count_tokens_cheap, self.settings.answer_context_tokens)
        t_assemble = time.perf_counter() - t
        if not sources:
            from localrag.app.answering import Answer

            return Answer(question=plan.standalone, text=IDK, abstained=True, model_id=EXTRACTIVE_MODEL_ID,
                          abstain_reason="no source fits the context budget", warnings=notes, mode="extractive",
                          tokens={"prompt": 0, "completion": 0}, timings={"assemble": t_assemble})
        result = self._extract(plan, sources)
        ans = to_answer(plan.standalone, sources, result, mode="extractive")
        ans.warnings = notes + ans.warnings
        ans.timings = {"assemble": t_assemble, **ans.timings}
        return ans

    def _auto_fallback(self, plan: AskPlan, final: Answer, stream: bool) -> Iterator[Any]:
        """Auto mode: a generated answer that abstained because its drafts failed a hard guardrail (or the model
        said it does not know) is replaced by the extractive answer over the same sources, when that one does not
        abstain; streamed after a `Restart` so that the rejected draft is discarded. Returns the Answer."""
        from localrag.app.answering import Restart
        from localrag.app.answering.extractive import to_answer

        rejected = final.abstained and final.sources and (
            (final.abstain_reason or "").startswith("guardrails:") or final.abstain_reason == MODEL_IDK)
        if not rejected:
            return final
        t = time.perf_counter()
        result = self._extract(plan, final.sources)
        if result.abstained:
            final.warnings.append(f"no extractive answer either ({result.reason})")
            return final
        why = final.abstain_reason or ""
        ans = to_answer(plan.standalone, final.sources, result, mode="auto:extractive")
        ans.warnings = [w for w in final.warnings] + [
            f"the generated answer was rejected ({why}); this answer quotes the sources instead"] + ans.warnings
        ans.guardrails, ans.attempts, ans.tokens = final.guardrails, final.attempts, final.tokens
        ans.timings = {**final.timings, "extract": time.perf_counter() - t}
        if stream:
            yield Restart(final.attempts + 1, f"{why} — quoting the sources instead")
            yield ans.text
        return ans

    def _add_provenance(self, plan: AskPlan, final: Answer, res: SearchResults) -> None:
        """The asked and the searched question, the collection and its version, and the search's notes."""
        final.question = plan.question
        final.standalone_question = plan.rewritten
        final.collection, final.corpus_version = plan.collection, res.corpus_version
        final.warnings = list(res.notes) + final.warnings

    def _score_stage(self, plan: AskPlan, final: Answer) -> None:
        """The proxy scores of an answer with sources, when score_answers is on."""
        if self.settings.score_answers and final.sources:
            t = time.perf_counter()
            final.scores = self.score_answer(plan.standalone, final)
            plan.timings["score"] = time.perf_counter() - t

    def _store_answer(self, plan: AskPlan, final: Answer, res: SearchResults) -> None:
        """Keep the answer for the same or an equivalent question in this scope and corpus version."""
        t = time.perf_counter()
        self.cache.put(plan.collection_id, res.corpus_version, plan.model_id, plan.scope, plan.standalone,
                       final.to_dict())
        final.timings["cache_store"] = time.perf_counter() - t

    # --- documents, conversations and feedback (app/conversations.py) ------------------------------------------
    def documents(self, collection: str = "default") -> list[dict[str, Any]]:
        """The documents of a collection, by source: kind, status ("ok", or "duplicate" of another file), chunks,
        pages (PDFs), title, size in bytes, when ingested, and warnings."""
        coll = self._collection(collection, create=False)
        with self.store.session() as s:
            rows = s.scalars(select(DocumentRow).where(DocumentRow.collection_id == coll.id)
                             .order_by(DocumentRow.source)).all()
            by_id = {d.id: d.source for d in rows}
        out = []
        for d in rows:
            meta = json.loads(d.meta) if d.meta else {}
            out.append({
                "source": d.source, "name": d.source.rsplit("/", 1)[-1], "kind": d.kind, "status": d.status,
                "duplicate_of": by_id.get(d.duplicate_of) if d.duplicate_of else None, "chunks": d.n_chunks,
                "pages": int(meta["pages"]) if str(meta.get("pages", "")).isdigit() else None,
                "title": meta.get("title"), "size": d.size, "ingested": d.ingested,
                "warnings": json.loads(d.warnings) if d.warnings else [],
            })
        return out

    @property
    def conversations(self) -> Conversations:
        """Saved chats and 👍/👎 feedback, in this data directory's database (app/conversations.py)."""
        conv = self.__dict__.get("_conversations")
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


ANSWER_MODES = ("generative", "extractive", "auto")
MODEL_IDK = "the model found no answer in the sources"  # Answerer's abstain_reason when the model said IDK


def _standalone_without_llm(history: list[dict[str, str]], question: str) -> str:
    """A follow-up made standalone without a model (extractive mode): the previous question plus this one when
    this one points back into the conversation (what rewrite_question falls back to)."""
    from localrag.app.answering.prompt import _FOLLOW_UP

    users = [m["content"] for m in history if m.get("role") == "user" and m.get("content", "").strip()]
    return f"{users[-1]} {question}" if users and _FOLLOW_UP.search(question) else question


def _emit(ans: Answer, stream: bool) -> Iterator[Any]:
    """A finished answer as `_ask` events: its text first when streaming, then the Answer."""
    if stream:
        yield ans.text
    yield ans


def _as_messages(history: Sequence[Any]) -> list[dict[str, str]]:
    """Chat history as messages: accepts message dicts or (question, answer) pairs."""
    msgs: list[dict[str, str]] = []
    for item in history:
        if isinstance(item, dict):
            msgs.append({"role": str(item.get("role")), "content": str(item.get("content", ""))})
        else:
            q, a = item
            msgs += [{"role": "user", "content": str(q)}, {"role": "assistant", "content": str(a)}]
    return msgs
